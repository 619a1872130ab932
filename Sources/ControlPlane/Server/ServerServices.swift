import FlareContracts
import Foundation
import Logging
import ServiceLifecycle

/// A background loop of the server, cancelled when the group shuts down gracefully.
struct LoopService: Service, CustomStringConvertible {
    let description: String
    let body: @Sendable () async throws -> Void

    func run() async throws {
        try await cancelWhenGracefulShutdown { try await body() }
    }
}

/// The first part to shut down: it ends what would hold the HTTP server's drain open forever
/// (agents' long polls, gateways' revocation streams, terminal shells, agent channels), so the
/// server can then finish the requests in flight and stop.
struct DrainService: Service, CustomStringConvertible {
    let description = "drain"
    let drain: @Sendable () async -> Void

    func run() async throws {
        try? await gracefulShutdown()
        await drain()
    }
}

extension ControlPlaneServer {
    /// The server's parts, in start order; a `ServiceGroup` shuts them down in reverse: first the
    /// drain, then the HTTP server (which finishes its requests), then builds, sweeps and the
    /// reconciler, and last the runtime's exit events (an agent that ends meanwhile is still
    /// recorded). Call ``prepare()`` first.
    public func services(onListening: @escaping @Sendable (Int) async -> Void = { _ in })
        -> [ServiceGroupConfiguration.ServiceConfiguration]
    {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: LoopService(description: "runtime-events") { [driver, lifecycle] in
                for await event in driver.events {
                    switch event {
                    case .exited(let sessionId, let description):
                        await lifecycle.agentExited(sessionId, description: description)
                    }
                }
            }),
            .init(service: ReconcileService(store: store, lifecycle: lifecycle, blobs: api.blobs,
                                            interval: configuration.reconcileInterval, logger: logger)),
        ]
        if let docker = driver as? DockerRuntimeDriver, let builds = api.builds {
            let builder = TemplateBuilder(store: store, engine: docker.engine, builds: builds,
                                          dataDirectory: configuration.dataDirectory,
                                          limits: configuration.buildLimits, logger: logger)
            services.append(.init(service: LoopService(description: "template-builder") { try await builder.run() }))
        }
        services += [
            .init(service: LoopService(description: "terminal-expiry") { [terminals] in await terminals.runExpiry() }),
            .init(service: LoopService(description: "idle-sweep") { [gateway] in await gateway.runIdleSweep() }),
            .init(service: makeApplication(onListening: onListening)),
            .init(service: DrainService { [api, terminals, channels] in
                await api.commands.close()
                api.revocations.finish()
                terminals.closeAll()
                channels.closeAll()
            }),
        ]
        return services
    }

    /// Before any part starts: checks the runtime, registers the embedded gateway's key, and
    /// recovers the sessions a previous run left (re-adopting live agents and reopening their
    /// channels, or recording them lost), so by the time the port is announced a connection, or
    /// an agent refreshing its keys, finds them.
    public func prepare() async throws {
        if let docker = driver as? DockerRuntimeDriver { try await docker.check() }
        // The embedded gateway's terminal bridge logs in to agents with this key.
        try await store.registerGateway(GatewayRecord(serviceKey: SSHPublicKey(line: terminals.servicePublicKey)?.line ?? "",
                                                      name: "embedded", registeredAt: Date()))
        try await lifecycle.recover()
    }

    /// Runs every part in a `ServiceGroup` until one fails or the task is cancelled (tests, and
    /// callers with their own signal handling); `flare-server` adds SIGTERM and SIGINT.
    public func run() async throws {
        try await run(onListening: { _ in })
    }

    public func run(onListening: @escaping @Sendable (Int) async -> Void) async throws {
        try await prepare()
        try await ServiceGroup(configuration: groupConfiguration(onListening: onListening)).run()
    }

    /// The group's configuration: the parts, SIGTERM and SIGINT for a graceful shutdown when
    /// `stopOnSignals`, and at most 30 s for it before the rest is cancelled.
    public func groupConfiguration(onListening: @escaping @Sendable (Int) async -> Void = { _ in },
                                   stopOnSignals: Bool = false) -> ServiceGroupConfiguration {
        var group = ServiceGroupConfiguration(services: services(onListening: onListening),
                                              gracefulShutdownSignals: stopOnSignals ? [.sigterm, .sigint] : [],
                                              logger: logger)
        group.maximumGracefulShutdownDuration = .seconds(30)
        return group
    }
}

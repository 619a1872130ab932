import FlareContracts
import FlareHTTP
import Foundation
import Gateway
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle

/// What flare-server needs to know; the executable fills it from flags and environment.
public struct ControlPlaneConfiguration: Sendable {
    /// Holds the SQLite database, the signing key, and per-session directories.
    public var dataDirectory: URL
    public var host: String = "127.0.0.1"
    /// 0 picks a free port.
    public var port: Int = 8787
    /// The flare-agent binary the host runtime starts.
    public var agentExecutable: String
    /// Where sessions run: `.host` (child processes) or `.docker(…)` (containers).
    public var runtime: Runtime = .host

    public enum Runtime: Sendable {
        case host
        case docker(DockerRuntimeDriver.Configuration)
    }
    /// bcrypt cost for password hashes.
    public var bcryptCost: UInt8 = 11
    /// How long a starting agent has to report ready.
    public var readyTimeout: Duration = .seconds(60)
    /// How often agents send their activity figures.
    public var agentHeartbeatSeconds = 15
    /// The largest snapshot an agent may upload.
    public var maxSnapshotBytes: Int64 = 20 << 30
    /// Snapshots kept per session.
    public var maxSnapshotsPerSession = 20
    /// Snapshot storage per user.
    public var maxStoragePerUser: Int64 = 100 << 30
    /// How long a stopping agent has (its final snapshot included) before it is killed.
    public var stopGrace: Duration = .seconds(60)
    /// How often idle sessions are put to sleep and expired ones purged.
    public var reconcileInterval: Duration = .seconds(15)
    /// The largest template bundle accepted (docker runtime).
    public var maxBundleBytes: Int64 = 256 << 20
    /// A gateway connection with no traffic either way for this long is closed.
    public var idleConnectionTimeout: Duration = .seconds(3600)

    public init(dataDirectory: URL, agentExecutable: String) {
        self.dataDirectory = dataDirectory
        self.agentExecutable = agentExecutable
    }
}

/// flare-server: the control plane with the gateway embedded, on one port.
public final class ControlPlaneServer: Service, Sendable {
    let configuration: ControlPlaneConfiguration
    let store: Store
    let lifecycle: SessionLifecycle
    let driver: any RuntimeDriver
    let api: ControlPlaneAPI
    let gateway: Gateway
    let gatewayBackend: EmbeddedGatewayBackend
    let terminals: TerminalBridge
    let metrics: MetricsEndpoint
    /// SHA-256 of the token standalone gateways present (the `gateway-token` file).
    let gatewayTokenHash: String
    let logger: Logger
    private let listeningURL = LockedURL()

    /// Opens the store (migrating it), loads or creates the signing key, and prepares the runtime.
    public init(configuration: ControlPlaneConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let fm = FileManager.default
        try fm.createDirectory(at: configuration.dataDirectory, withIntermediateDirectories: true,
                               attributes: [.posixPermissions: 0o700])
        store = try Store(path: configuration.dataDirectory.appendingPathComponent("flare.sqlite").path)
        let signingKey = try SigningKey.loadOrCreate(
            at: configuration.dataDirectory.appendingPathComponent("runtime-token-ed25519.key"))
        let url = listeningURL
        let agentURL: @Sendable () -> String
        switch configuration.runtime {
        case .host:
            driver = HostRuntimeDriver(dataDirectory: configuration.dataDirectory,
                                       agentExecutable: configuration.agentExecutable, logger: logger)
            agentURL = { url.value }
        case .docker(let docker):
            driver = DockerRuntimeDriver(configuration: docker, logger: logger)
            // Containers have no network: agents dial home over the Unix socket mounted into them.
            agentURL = { DockerRuntimeDriver.controlPlaneURL }
        }
        lifecycle = SessionLifecycle(store: store, driver: driver, controlPlaneURL: agentURL,
                                     readyTimeout: configuration.readyTimeout, stopGrace: configuration.stopGrace,
                                     logger: logger)
        metrics = MetricsEndpoint()
        terminals = TerminalBridge(serviceKey: try TerminalBridge.loadOrCreateServiceKey(
            at: configuration.dataDirectory.appendingPathComponent("gateway-service-ed25519.key").path))
        gatewayBackend = EmbeddedGatewayBackend(store: store, lifecycle: lifecycle)
        let gateway = Gateway(verifier: RuntimeTokenVerifier(publicKey: signingKey.publicKey), backend: gatewayBackend,
                              metrics: GatewayMetrics(factory: metrics.factory),
                              idleTimeout: configuration.idleConnectionTimeout, terminals: terminals)
        self.gateway = gateway
        gatewayTokenHash = SessionLifecycle.hash(try Self.loadOrCreateGatewayToken(
            at: configuration.dataDirectory.appendingPathComponent("gateway-token")))
        api = ControlPlaneAPI(store: store, lifecycle: lifecycle, hasher: PasswordHasher(cost: configuration.bcryptCost),
                              signingKey: signingKey, agentHeartbeatSeconds: configuration.agentHeartbeatSeconds,
                              blobs: try FileBlobStore(directory: configuration.dataDirectory.appendingPathComponent("blobs")),
                              maxSnapshotBytes: configuration.maxSnapshotBytes,
                              maxSnapshotsPerSession: configuration.maxSnapshotsPerSession,
                              maxStoragePerUser: configuration.maxStoragePerUser,
                              commands: AgentCommandBroker(),
                              revocations: RevocationHub(revokeLocally: { gateway.revoke($0) }),
                              builds: Self.buildsImages(configuration)
                                  ? TemplateBuilds(directory: Self.buildsDirectory(configuration),
                                                   maxBundleBytes: configuration.maxBundleBytes) : nil)
    }

    static func buildsImages(_ configuration: ControlPlaneConfiguration) -> Bool {
        if case .docker = configuration.runtime { return true }
        return false
    }

    static func buildsDirectory(_ configuration: ControlPlaneConfiguration) -> URL {
        configuration.dataDirectory.appendingPathComponent("builds")
    }

    /// The token standalone gateways authenticate with, created (mode 0600) on first start.
    static func loadOrCreateGatewayToken(at url: URL) throws -> String {
        if let text = try? String(contentsOf: url, encoding: .utf8),
           !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let token = SessionLifecycle.newSecret(prefix: "fgw_")
        guard FileManager.default.createFile(atPath: url.path, contents: Data((token + "\n").utf8),
                                             attributes: [.posixPermissions: 0o600])
        else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path]) }
        return token
    }

    /// The router with every route: API, agent dial-home and gateway.
    public func makeRouter() -> Router<FlareRequestContext> {
        let router = Router(context: FlareRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        api.addRoutes(to: router)
        api.addGatewayRoutes(to: router.group("/gateway/v1").add(middleware: GatewayAuthMiddleware(tokenHash: gatewayTokenHash)),
                             backend: gatewayBackend, verifier: gateway.verifier)
        gateway.addRoutes(to: router)
        let store = self.store
        let sessionGauges = SessionStateGauges(factory: metrics.factory)
        metrics.addRoute(to: router) { await sessionGauges.update(from: store) }
        return router
    }

    /// The HTTP application; `onListening` gets the bound port.
    public func makeApplication(onListening: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol
    {
        let router = makeRouter()
        let host = configuration.host
        let url = listeningURL
        return Application(
            router: router,
            server: .http1WebSocketUpgrade(
                webSocketRouter: router,
                configuration: .init(ws: Gateway.webSocketConfiguration)),
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "flare-server"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let reachable = (host == "0.0.0.0" || host == "::") ? "127.0.0.1" : host
                url.value = "http://\(reachable.contains(":") ? "[\(reachable)]" : reachable):\(port)"
                await onListening(port)
            },
            logger: logger)
    }

    /// Recovers sessions left by a previous run, then serves until shut down.
    public func run() async throws {
        try await runApplication(makeApplication())
    }

    /// Like ``run()``, reporting the bound port (tests and `--port 0`).
    public func run(onListening: @escaping @Sendable (Int) async -> Void) async throws {
        try await runApplication(makeApplication(onListening: onListening))
    }

    /// The agent API on a Unix socket (`<data>/control/agent.sock`), for agents in containers
    /// without a network. Same router; every route still needs its token.
    func makeAgentSocketApplication() throws -> some ApplicationProtocol {
        let directory = configuration.dataDirectory.appendingPathComponent("control")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        chmod(directory.path, 0o755)
        let path = directory.appendingPathComponent("agent.sock").path
        unlink(path)
        return Application(
            router: makeRouter(),
            configuration: .init(address: .unixDomainSocket(path: path), serverName: "flare-server"),
            onServerRunning: { _ in
                // Agents run as the image's user, not the server's.
                chmod(path, 0o666)
            },
            logger: logger)
    }

    private func runApplication(_ application: some ApplicationProtocol) async throws {
        if let docker = driver as? DockerRuntimeDriver { try await docker.check() }
        let agentSocket = try makeAgentSocketApplication()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await agentSocket.runService() }
            group.addTask {
                for await event in self.driver.events {
                    switch event {
                    case .exited(let sessionId, let description):
                        await self.lifecycle.agentExited(sessionId, description: description)
                    }
                }
            }
            group.addTask { try await application.runService() }
            group.addTask { await self.terminals.runExpiry() }
            if let docker = self.driver as? DockerRuntimeDriver, let builds = self.api.builds {
                group.addTask {
                    try await TemplateBuilder(store: self.store, engine: docker.engine, builds: builds,
                                              dataDirectory: self.configuration.dataDirectory,
                                              logger: self.logger).run()
                }
            }
            group.addTask { await self.gateway.runIdleSweep() }
            group.addTask {
                // On SIGTERM, end the agents' long polls and the gateways' revocation streams so the
                // HTTP server can drain and exit.
                try? await gracefulShutdown()
                await self.api.commands.close()
                self.api.revocations.finish()
                self.terminals.closeAll()
                try? await Task.sleep(for: .seconds(3600))
            }
            group.addTask {
                try await ReconcileService(store: self.store, lifecycle: self.lifecycle, blobs: self.api.blobs,
                                           interval: self.configuration.reconcileInterval, logger: self.logger).run()
            }
            // The embedded gateway's terminal bridge logs in to agents with this key.
            try await self.store.registerGateway(GatewayRecord(serviceKey: SSHPublicKey(line: self.terminals.servicePublicKey)?.line ?? "",
                                                               name: "embedded", registeredAt: Date()))
            // Recovery needs the server's URL only for agents started later, so it can run alongside.
            try await self.lifecycle.recover()
            _ = try await group.next()
            group.cancelAll()
        }
    }
}

/// The server's own URL once it listens (agents dial it).
final class LockedURL: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = ""
    var value: String {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

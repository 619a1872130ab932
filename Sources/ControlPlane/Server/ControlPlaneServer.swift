import FlareContracts
import FlareHTTP
import Foundation
import Gateway
import Hummingbird
import HummingbirdCore
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
    /// The host runtime's sandbox uids when the server runs as root: one per running session.
    /// Above the ranges systemd and container engines hand out (0x70000000 on).
    public var sandboxUIDs: ClosedRange<uid_t> = 1_879_048_192...1_879_057_191
    /// One account only: registration closes after the first, and the host runtime may run
    /// unconfined where no sandbox can be made.
    public var singleUser = false
    /// How long an access token lives; clients refresh it with their refresh token.
    public var accessTokenLifetime: Duration = .seconds(15 * 60)
    /// How long a device's sign-in codes (`flare auth login --device`) wait for approval.
    public var deviceCodeLifetime: Duration = .seconds(10 * 60)
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
    /// Limits on each template build's `setup` step (docker runtime), and the network it runs in.
    public var buildLimits = BuildLimits()
    /// The most a template's `resources` may ask for; more is a 400 at upload.
    public var resourceCeilings = TemplateResources(memoryMB: 16 * 1024, cpus: 4, pids: 8192)
    /// A client must send its first request's headers within this (slow-header clients are dropped).
    public var headerTimeout: Duration = .seconds(10)
    /// An HTTP connection idle between requests for this long is closed.
    public var httpIdleTimeout: Duration = .seconds(300)
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
    let channels: AgentChannels
    let api: ControlPlaneAPI
    let gateway: Gateway
    let gatewayBackend: EmbeddedGatewayBackend
    let terminals: TerminalBridge
    let metrics: MetricsEndpoint
    /// SHA-256 of the token standalone gateways present (the `gateway-token` file).
    let gatewayTokenHash: String
    let logger: Logger

    /// Opens the store (migrating it), loads or creates the signing key, and prepares the runtime.
    public init(configuration: ControlPlaneConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let fm = FileManager.default
        try fm.createDirectory(at: configuration.dataDirectory, withIntermediateDirectories: true,
                               attributes: [.posixPermissions: 0o700])
        Self.tightenPermissions(of: configuration.dataDirectory)
        store = try Store(path: configuration.dataDirectory.appendingPathComponent("flare.sqlite").path)
        let signingKey = try SigningKey.loadOrCreate(
            at: configuration.dataDirectory.appendingPathComponent("runtime-token-ed25519.key"))
        switch configuration.runtime {
        case .host:
            let sandbox: HostSandbox?
            do {
                sandbox = try HostSandbox.probe(agentExecutable: configuration.agentExecutable,
                                                sandboxUIDs: configuration.sandboxUIDs)
            } catch let error as HostSandbox.Unavailable {
                guard configuration.singleUser else {
                    throw RuntimeDriverError(description: "the host runtime cannot confine sessions here (\(error)); "
                        + "fix that, use --runtime docker, or pass --single-user to run sessions unconfined for "
                        + "one account")
                }
                logger.warning("host runtime without confinement (single-user mode)", metadata: ["reason": "\(error)"])
                sandbox = nil
            }
            var cgroups: HostCgroups?
            if sandbox != nil, geteuid() == 0 {
                do {
                    cgroups = try HostCgroups.probe()
                } catch {
                    guard configuration.singleUser else {
                        throw RuntimeDriverError(description: "the host runtime cannot limit sessions' memory, CPU "
                            + "and processes here (\(error)); use --runtime docker, or --single-user")
                    }
                    logger.warning("host sessions without resource limits (single-user mode)",
                                   metadata: ["reason": "\(error)"])
                }
            } else if sandbox != nil {
                logger.warning("host sessions share the server's uid and have no resource limits: run the server as root for both")
            }
            driver = HostRuntimeDriver(dataDirectory: configuration.dataDirectory,
                                       agentExecutable: configuration.agentExecutable, sandbox: sandbox,
                                       cgroups: cgroups, logger: logger)
        case .docker(let docker):
            driver = DockerRuntimeDriver(configuration: docker, logger: logger)
        }
        // Agents reach the control plane only through their session's own channel (never the
        // public port), whose router is the API's agent routes bound to that session.
        let agentRouters = AgentRouterFactory()
        channels = AgentChannels(directory: configuration.dataDirectory.appendingPathComponent("control"),
                                 logger: logger, makeRouter: { agentRouters.make($0) })
        lifecycle = SessionLifecycle(store: store, driver: driver, channels: channels,
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
                              snapshotLimits: SnapshotLimits(maxSnapshotBytes: configuration.maxSnapshotBytes,
                                                             maxSnapshotsPerSession: configuration.maxSnapshotsPerSession,
                                                             maxStoragePerUser: configuration.maxStoragePerUser),
                              commands: AgentCommandBroker(),
                              revocations: RevocationHub(revokeLocally: { gateway.revoke($0) }),
                              builds: Self.buildsImages(configuration)
                                  ? TemplateBuilds(directory: Self.buildsDirectory(configuration),
                                                   maxBundleBytes: configuration.maxBundleBytes) : nil,
                              resourceCeilings: configuration.resourceCeilings,
                              singleUser: configuration.singleUser,
                              accessTokenLifetime: TimeInterval(configuration.accessTokenLifetime.components.seconds),
                              deviceCodeLifetime: TimeInterval(configuration.deviceCodeLifetime.components.seconds))
        agentRouters.set { [api] in api.makeAgentRouter(boundTo: $0) }
    }

    /// At every start: the data directory is the server's alone (0700) and so are the files in it
    /// (0600): the database, its WAL, the signing and service keys, the gateway token.
    static func tightenPermissions(of directory: URL) {
        chmod(directory.path, 0o700)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] {
            let path = directory.appendingPathComponent(name).path
            var info = stat()
            guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
            chmod(path, 0o600)
        }
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
        api.addGatewayRoutes(to: router.group().add(middleware: GatewayAuthMiddleware(tokenHash: gatewayTokenHash))
                                 .group(context: GatewayLinkRequestContext.self),
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
        let webSocketResponder = router.buildResponder()
        return Application(
            router: router,
            server: HTTPServerBuilder { [headerTimeout = configuration.headerTimeout,
                                         idleTimeout = configuration.httpIdleTimeout] responder in
                HeaderDeadlineChannel(
                    inner: HTTP1WebSocketUpgradeChannel(
                        responder: responder, webSocketResponder: webSocketResponder,
                        configuration: .init(http1: .init(idleTimeout: .init(idleTimeout)),
                                             ws: Gateway.webSocketConfiguration)),
                    timeout: .init(headerTimeout))
            },
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: "flare-server"),
            onServerRunning: { channel in
                await onListening(channel.localAddress?.port ?? 0)
            },
            logger: logger)
    }
}

/// Builds each session's agent router once the API exists (the API needs the lifecycle, which
/// needs the channels).
final class AgentRouterFactory: @unchecked Sendable {
    private let lock = NSLock()
    private var factory: (@Sendable (String) -> Router<FlareRequestContext>)?

    func set(_ factory: @escaping @Sendable (String) -> Router<FlareRequestContext>) {
        lock.withLock { self.factory = factory }
    }

    func make(_ sessionId: String) -> Router<FlareRequestContext> {
        guard let factory = lock.withLock({ factory }) else { preconditionFailure("agent routers used before set") }
        return factory(sessionId)
    }
}

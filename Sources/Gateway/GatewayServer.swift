import AsyncHTTPClient
import FlareContracts
import FlareHTTP
import Foundation
import Hummingbird
import NIOCore
import HummingbirdWebSocket
import Logging
import ServiceLifecycle

/// flare-gateway: the Gateway library as its own process, for running several beside one control
/// plane. It registers with the control plane (getting the runtime-token key), resolves sessions
/// through it, and follows its revocation stream.
public final class GatewayServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var controlPlaneURL: String
        public var gatewayToken: String
        /// Holds the terminal bridge's service key.
        public var dataDirectory: URL
        public var host = "127.0.0.1"
        public var port = 8788
        public var name = "flare-gateway"
        /// A connection with no traffic either way for this long is closed.
        public var idleTimeout: Duration = .seconds(3600)

        public init(controlPlaneURL: String, gatewayToken: String, dataDirectory: URL) {
            self.controlPlaneURL = controlPlaneURL
            self.gatewayToken = gatewayToken
            self.dataDirectory = dataDirectory
        }
    }

    let configuration: Configuration
    let logger: Logger
    let onListening: @Sendable (Int) async -> Void

    public init(configuration: Configuration, logger: Logger, onListening: @escaping @Sendable (Int) async -> Void) {
        self.configuration = configuration
        self.logger = logger
        self.onListening = onListening
    }

    public func run() async throws {
        try FileManager.default.createDirectory(at: configuration.dataDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let terminals = TerminalBridge(serviceKey: try TerminalBridge.loadOrCreateServiceKey(
            at: configuration.dataDirectory.appendingPathComponent("gateway-service-ed25519.key").path))
        let streamClient = HTTPClient(eventLoopGroupProvider: .singleton,
                                      configuration: ControlPlaneLink.streamClientConfiguration)
        do {
            try await serve(terminals: terminals, streamClient: streamClient)
        } catch {
            try? await streamClient.shutdown()
            throw error
        }
        try? await streamClient.shutdown()
    }

    private func serve(terminals: TerminalBridge, streamClient: HTTPClient) async throws {
        let link = ControlPlaneLink(baseURL: configuration.controlPlaneURL, gatewayToken: configuration.gatewayToken,
                                    streamClient: streamClient, logger: logger)
        let verifier = try await link.register(serviceKey: terminals.servicePublicKey, name: configuration.name)
        let metrics = MetricsEndpoint()
        let gateway = Gateway(verifier: verifier, backend: link, metrics: GatewayMetrics(factory: metrics.factory),
                              idleTimeout: configuration.idleTimeout, terminals: terminals)
        let router = Router(context: StandaloneGatewayContext.self)
        router.add(middleware: ErrorMiddleware())
        router.get("/healthz") { _, _ in "ok\n" }
        gateway.addRoutes(to: router)
        metrics.addRoute(to: router)
        let application = Application(
            router: router,
            server: .http1WebSocketUpgrade(webSocketRouter: router,
                                           configuration: .init(ws: Gateway.webSocketConfiguration)),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port),
                                 serverName: configuration.name),
            onServerRunning: { [onListening] channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await application.runService() }
            group.addTask { await link.followRevocations(into: gateway) }
            group.addTask { await terminals.runExpiry() }
            group.addTask { await gateway.runIdleSweep() }
            group.addTask {
                try? await gracefulShutdown()
                terminals.closeAll()
                try? await Task.sleep(for: .seconds(3600))
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }
}

/// The standalone gateway's request context.
public struct StandaloneGatewayContext: RequestContext, GatewayRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<StandaloneGatewayContext>
    public let gatewayAuthorization = GatewayAuthorizationBox()
    public let connectionChannel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        connectionChannel = source.channel
        webSocket = .init()
    }
}

import Crypto
import FlareClient
import FlareContracts
import FlareHTTP
import FlareSystem
import Foundation
import Gateway
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import Logging
import NIOCore
import Testing

/// The relay itself under load: many connections at once, and a reader slower than its producer.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct GatewayRelayTests {
    @Test func twoHundredConcurrentRelayedConnectionsEachReachTheAgent() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let session = try await fixture.sessionId()
        let token = try await fixture.runtimeToken(session: session, purpose: .ssh)
        let url = fixture.url.replacingOccurrences(of: "http://", with: "ws://") + Endpoints.Gateway.ssh.at(session).query(["token": token]).path
        let count = 200
        let greeted = Counter()
        let logger = quietLogger()

        let banners = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<count {
                group.addTask {
                    let banner = TextBox()
                    try await WebSocketClient.connect(url: url, logger: logger) { inbound, _, _ in
                        for try await frame in inbound {
                            banner.append(String(buffer: frame.data))
                            if banner.value.contains("\n") { break }
                        }
                        // Hold the connection until every other one is open too.
                        greeted.increment()
                        let deadline = Date().addingTimeInterval(60)
                        while greeted.value < count, Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
                        try await Task.sleep(for: .milliseconds(500))
                    }
                    return banner.value
                }
            }
            // While all are open, the gateway reports them.
            var open = 0.0
            _ = await waitForAsync(timeout: 60) {
                let metrics = (try? await RawHTTP.get(fixture.url, "/metrics").1) ?? ""
                open = metrics.split(separator: "\n")
                    .first { $0.hasPrefix(#"flare_gateway_open_connections{purpose="ssh"} "#) }
                    .flatMap { Double($0.split(separator: " ").last!) } ?? 0
                return open == Double(count)
            }
            #expect(open == Double(count))
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(banners.count == count)
        #expect(banners.allSatisfy { $0.hasPrefix("SSH-2.0-") }, "\(Set(banners))")
    }

    @Test func aSlowReaderHoldsTheProducerBackInsteadOfFillingTheGateway() async throws {
        let directory = try TemporaryDirectory()
        let flood = try FloodServer(path: directory.path("agent.sock"))
        let signingKey = Curve25519.Signing.PrivateKey()
        let gateway = Gateway(verifier: RuntimeTokenVerifier(publicKey: signingKey.publicKey),
                              backend: FixedBackend(endpoint: .unix(path: flood.path)),
                              metrics: GatewayMetrics(factory: MetricsEndpoint().factory))
        let router = Router(context: StandaloneGatewayContext.self)
        gateway.addRoutes(to: router)
        let app = Application(router: router, server: .http1WebSocketUpgrade(
            webSocketRouter: router, configuration: .init(ws: Gateway.webSocketConfiguration)))
        let token = try RuntimeToken.sign(RuntimeTokenClaims(
            id: "rt_1", sessionId: "ses_1", userId: "usr_1", purpose: .ssh, issuedAt: Date(),
            expiresAt: Date().addingTimeInterval(60)), with: signingKey)

        try await app.test(.live) { client in
            let port = try #require(client.port)
            let logger = quietLogger()
            let consumed = Counter()
            let close = try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/gateway/ssh/ses_1?token=\(token)",
                                                          configuration: .init(maxFrameSize: Gateway.maxFrameSize),
                                                          logger: logger) { inbound, _, _ in
                var until: Date?
                for try await frame in inbound {
                    // Read for 4 s from the first byte (a loaded machine may take a while to connect).
                    until = until ?? Date().addingTimeInterval(4)
                    consumed.add(frame.data.readableBytes)
                    // A few MB/s: far slower than the producer.
                    try await Task.sleep(for: .milliseconds(40))
                    if let until, Date() > until { break }
                }
            }
            let produced = flood.written
            let inFlight = produced - consumed.value
            // Socket buffers on both sides hold a few MB; without backpressure the gateway would have
            // read the whole flood (gigabytes a second on loopback).
            // Under a loaded test run reads can stay small; what matters is that some got through.
            #expect(consumed.value > 0, "\(String(describing: close))")
            #expect(inFlight < 24 << 20, "produced \(produced), consumed \(consumed.value)")
        }
        flood.stop()
    }
}

/// Resolves every token to one endpoint (the relay test's flood server).
struct FixedBackend: GatewayBackend {
    let endpoint: AgentEndpoint

    func resolve(_ claims: RuntimeTokenClaims, token: String) async throws -> ResolvedSession {
        ResolvedSession(endpoint: endpoint, hostPublicKey: "")
    }
}

/// A Unix-socket server that writes as fast as its client lets it, counting the bytes.
final class FloodServer: @unchecked Sendable {
    let path: String
    private let listener: Int32
    private let lock = NSLock()
    private var total = 0
    private var stopped = false

    init(path: String) throws {
        self.path = path
        listener = try UnixSocket.listen(path: path, backlog: 4)
        let thread = Thread { [self] in
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            defer { close(connection) }
            let chunk = [UInt8](repeating: 0x5a, count: 64 * 1024)
            while !lock.withLock({ stopped }) {
                let sent = chunk.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard sent > 0 else { return }
                lock.withLock { total += sent }
            }
        }
        thread.start()
    }

    var written: Int { lock.withLock { total } }

    func stop() {
        lock.withLock { stopped = true }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }
}

func quietLogger() -> Logger {
    var logger = Logger(label: "flare-tests")
    logger.logLevel = .critical
    return logger
}

final class TextBox: @unchecked Sendable {
    private let lock = NSLock()
    private var text = ""
    func append(_ more: String) { lock.withLock { text += more } }
    var value: String { lock.withLock { text } }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { add(1) }
    func add(_ n: Int) { lock.withLock { count += n } }
    var value: Int { lock.withLock { count } }
}

func waitForAsync(timeout: TimeInterval, _ condition: () async -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return await condition()
}

import AsyncHTTPClient
import FlareContracts
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOFoundationCompat

/// The API as the CLI signed in to it (the fixture's saved access token), for what the CLI has no
/// command for: runtime tokens for a WebSocket client, metrics.
struct FixtureAPI {
    let url: String
    let accessToken: String

    init(_ fixture: ServerFixture) throws {
        url = fixture.url
        let data = try Data(contentsOf: URL(fileURLWithPath: fixture.directory.path("cli/config.json")))
        struct Saved: Decodable { var accessToken: String }
        accessToken = try JSONDecoder().decode(Saved.self, from: data).accessToken
    }

    func runtimeToken(session: String, purpose: RuntimeTokenPurpose) async throws -> String {
        var request = HTTPClientRequest(url: "\(url)/api/sessions/\(session)/runtime-token")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(accessToken)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(data: try FlareJSON.encoder().encode(RuntimeTokenRequest(purpose: purpose))))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        return try FlareJSON.decoder().decode(RuntimeTokenResponse.self, from: Data(buffer: body)).token
    }

    /// `PUT PATH` with a file as the body; status and body text.
    func put(_ path: String, file: String) async throws -> (UInt, String) {
        var request = HTTPClientRequest(url: url + path)
        request.method = .PUT
        request.headers.add(name: "Authorization", value: "Bearer \(accessToken)")
        request.body = .bytes(ByteBuffer(data: try Data(contentsOf: URL(fileURLWithPath: file))))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (response.status.code, String(buffer: body))
    }

    /// `GET PATH` on `base` (default: the server) as text.
    static func get(_ base: String, _ path: String) async throws -> (UInt, String) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: base + path), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        return (response.status.code, String(buffer: body))
    }
}

/// A browser terminal driven from a test: what a web page does over `/gateway/terminal`.
final class TerminalDriver: @unchecked Sendable {
    private let lock = NSLock()
    private var closed = false
    private var output = ""
    private var messages: [TerminalMessage] = []
    let outbound: WebSocketOutboundWriter

    private init(outbound: WebSocketOutboundWriter) {
        self.outbound = outbound
    }

    /// Connects, runs `script` while frames are collected, and returns the close frame.
    @discardableResult
    static func run(gateway: String, session: String, token: String, query: String = "",
                    script: @escaping @Sendable (TerminalDriver) async throws -> Void) async throws
        -> WebSocketCloseFrame?
    {
        var logger = Logger(label: "test-terminal")
        logger.logLevel = .critical
        let url = gateway.replacingOccurrences(of: "http://", with: "ws://")
            + "/gateway/terminal/\(session)?token=\(token)\(query)"
        return try await WebSocketClient.connect(url: url, logger: logger) { inbound, outbound, _ in
            let driver = TerminalDriver(outbound: outbound)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await frame in inbound {
                        driver.received(frame.opcode == .text, frame.data)
                    }
                    driver.lock.withLock { driver.closed = true }
                }
                try await script(driver)
                group.cancelAll()
            }
        }
    }

    private func received(_ isText: Bool, _ data: ByteBuffer) {
        lock.withLock {
            if isText, let message = try? JSONDecoder().decode(TerminalMessage.self, from: Data(buffer: data)) {
                messages.append(message)
            } else {
                output += String(buffer: data)
            }
        }
    }

    var text: String { lock.withLock { output } }
    var controlMessages: [TerminalMessage] { lock.withLock { messages } }

    func send(_ message: TerminalMessage) async throws {
        try await outbound.write(.text(message.json))
    }

    func type(_ text: String) async throws {
        try await outbound.write(.binary(ByteBuffer(string: text)))
    }

    /// Waits (bounded) until the output matches; returns whether it did.
    func waitForOutput(timeout: TimeInterval = 15, _ condition: @escaping (String) -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition(text) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return condition(text)
    }

    /// Waits (bounded) until the gateway closes the WebSocket; returns whether it did.
    func waitForClose(timeout: TimeInterval = 15) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if lock.withLock({ closed }) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    func waitForMessage(_ type: String, timeout: TimeInterval = 15) async -> TerminalMessage? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let found = controlMessages.first(where: { $0.type == type }) { return found }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }
}

/// What the tests read off the gateway's messages.
extension TerminalMessage {
    var terminal: String? { if case .ready(let terminal, _) = self { terminal } else { nil } }
    var resumed: Bool? { if case .ready(_, let resumed) = self { resumed } else { nil } }
    var status: Int32? { if case .exit(let status) = self { status } else { nil } }
}

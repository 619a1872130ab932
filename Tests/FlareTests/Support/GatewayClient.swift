import AsyncHTTPClient
import FlareClient
import FlareContracts
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOFoundationCompat

/// The API as the CLI signed in to it (the fixture's saved access token), for what the CLI has no
/// command for: runtime tokens for a WebSocket client, metrics.
extension ServerFixture {
    /// The API client signed in as the fixture's CLI user (the access token `flare` saved).
    func client() throws -> FlareClient {
        let data = try Data(contentsOf: URL(fileURLWithPath: directory.path("cli/config.json")))
        struct Saved: Decodable { var accessToken: String }
        return FlareClient(baseURL: url, token: try JSONDecoder().decode(Saved.self, from: data).accessToken,
                           timeout: .seconds(60))
    }

    func runtimeToken(session: String, purpose: RuntimeTokenPurpose) async throws -> String {
        try await client().call(Endpoints.Sessions.runtimeToken.at(session), RuntimeTokenRequest(purpose: purpose)).token
    }
}

/// Requests no API client makes: a WebSocket route asked without the upgrade, `/metrics`.
enum RawHTTP {
    /// `GET PATH` on `base` as text.
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
            + Endpoints.Gateway.terminal.at(session).path + "?token=\(token)\(query)"
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
    var isClosed: Bool { lock.withLock { closed } }
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

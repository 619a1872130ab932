import AsyncHTTPClient
import FlareContracts
import Foundation
import NIOCore
import NIOFoundationCompat

/// The agent's side of the dial-home API, authenticated with its per-session agent token.
public final class ControlPlaneClient: Sendable {
    let baseURL: String
    let token: String
    let client: HTTPClient

    public struct RequestError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(baseURL: String, token: String) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.client = HTTPClient(eventLoopGroupProvider: .singleton)
    }

    public func shutdown() async {
        try? await client.shutdown()
    }

    public func register(_ body: AgentRegisterRequest) async throws {
        _ = try await send("POST", "/agent/v1/register", body: body)
    }

    public func config() async throws -> AgentConfig {
        let data = try await send("GET", "/agent/v1/config", body: Optional<AgentHeartbeat>.none)
        return try FlareJSON.decoder().decode(AgentConfig.self, from: data)
    }

    public func ready(_ activity: AgentHeartbeat) async throws {
        _ = try await send("POST", "/agent/v1/ready", body: activity)
    }

    public func heartbeat(_ activity: AgentHeartbeat) async throws {
        _ = try await send("POST", "/agent/v1/heartbeat", body: activity)
    }

    private func send(_ method: String, _ path: String, body: (some Encodable)?) async throws -> Data {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .RAW(value: method)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try FlareJSON.encoder().encode(body)))
        }
        let response = try await client.execute(request, timeout: .seconds(15))
        let bytes = try await response.body.collect(upTo: 4 << 20)
        guard (200..<300).contains(response.status.code) else {
            let message = (try? FlareJSON.decoder().decode(ErrorBody.self, from: Data(buffer: bytes)))?.error.message
            throw RequestError(description: "\(method) \(path): \(response.status.code) \(message ?? "")")
        }
        return Data(buffer: bytes)
    }
}

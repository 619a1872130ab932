import AsyncHTTPClient
import Crypto
import FlareContracts
import FlareHTTP
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// A standalone gateway's line to the control plane: registration (which yields the runtime-token
/// public key), session resolution, and the revocation stream.
///
/// Every request carries the gateway token (`FLARE_GATEWAY_TOKEN`, from the server's data directory).
public struct ControlPlaneLink: GatewayBackend {
    let baseURL: String
    let gatewayToken: String
    let client: HTTPClient
    /// Reads the revocation stream; its read timeout (``streamClientConfiguration``) notices a
    /// stream gone silent, since the control plane sends a keepalive line every 10 s.
    let streamClient: HTTPClient
    let logger: Logger

    /// The revocation stream's client settings: a stream silent for 30 s is presumed dead and reopened.
    public static var streamClientConfiguration: HTTPClient.Configuration {
        HTTPClient.Configuration(timeout: .init(connect: .seconds(5), read: .seconds(30)))
    }

    public init(baseURL: String, gatewayToken: String, client: HTTPClient = .shared, streamClient: HTTPClient,
                logger: Logger) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.gatewayToken = gatewayToken
        self.client = client
        self.streamClient = streamClient
        self.logger = logger
    }

    /// Registers the terminal bridge's service key; returns the key runtime tokens are checked with.
    public func register(serviceKey: String, name: String) async throws -> RuntimeTokenVerifier {
        let response: GatewayRegisterResponse = try await post(
            "/gateway/v1/register", GatewayRegisterRequest(serviceKey: serviceKey, name: name))
        guard let raw = Data(base64Encoded: response.runtimeTokenPublicKey),
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
        else { throw APIError.unavailable("the control plane sent an unusable runtime-token key") }
        return RuntimeTokenVerifier(publicKey: key)
    }

    public func resolve(_ claims: RuntimeTokenClaims, token: String) async throws -> ResolvedSession {
        let response: GatewayResolveResponse = try await post("/gateway/v1/resolve",
                                                              GatewayResolveRequest(token: token))
        guard let endpoint = AgentEndpoint(response.endpoint) else {
            throw APIError.unavailable("the session's agent has no endpoint yet; try again")
        }
        return ResolvedSession(endpoint: endpoint, hostPublicKey: response.hostPublicKey,
                               wakeDuration: response.wakeSeconds.map { .milliseconds(Int64($0 * 1000)) })
    }

    /// Follows the revocation stream until cancelled, reopening it after errors or silence. Each
    /// (re)open first asks which open connections lost access meanwhile.
    public func followRevocations(into gateway: Gateway) async {
        var attempt = 0
        while !Task.isCancelled {
            do {
                try await followOnce(into: gateway) { attempt = 0 }
            } catch {
                if Task.isCancelled { return }
                logger.warning("revocation stream lost; reconnecting", metadata: ["error": "\(error)"])
            }
            attempt += 1
            try? await Task.sleep(for: .milliseconds(min(5000, 200 * attempt)))
        }
    }

    private func followOnce(into gateway: Gateway, opened: () -> Void) async throws {
        var request = HTTPClientRequest(url: baseURL + "/gateway/v1/revocations")
        request.headers.add(name: "Authorization", value: "Bearer \(gatewayToken)")
        let response = try await streamClient.execute(request, timeout: .hours(24 * 365))
        guard response.status == .ok else {
            throw try await Self.apiError(response)
        }
        opened()
        // Revocations published while the stream was down: re-check what is still open.
        let open = Array(gateway.connections.tokenIds)
        if !open.isEmpty {
            let check: GatewayCheckResponse = try await post("/gateway/v1/check", GatewayCheckRequest(tokenIds: open))
            for id in check.revokedTokenIds {
                gateway.revoke(Revocation(.token, id, reason: "revoked while the gateway was reconnecting"))
            }
        }
        var pending = ByteBuffer()
        for try await var chunk in response.body {
            pending.writeBuffer(&chunk)
            while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                let length = newline - pending.readerIndex
                guard let line = pending.readSlice(length: length + 1) else { break }
                let decoded = try? FlareJSON.decoder().decode(RevocationStreamLine.self, from: Data(buffer: line))
                if let revocation = decoded?.revocation {
                    let closed = gateway.revoke(revocation)
                    logger.info("revocation applied", metadata: [
                        "revocation.scope": "\(revocation.scope.rawValue)", "revocation.id": "\(revocation.id)",
                        "connections.closed": "\(closed)",
                    ])
                }
            }
            pending.discardReadBytes()
        }
        throw APIError.unavailable("the control plane closed the revocation stream")
    }

    /// The service keys registered with the control plane.
    public func keys() async throws -> [GatewayKeyInfo] {
        let data = try await send("/gateway/v1/keys", body: GatewayKeyRemoveRequest?.none, timeout: .seconds(30))
        return try FlareJSON.decoder().decode([GatewayKeyInfo].self, from: data)
    }

    /// Removes a registered service key by fingerprint.
    public func removeKey(fingerprint: String) async throws {
        _ = try await send("/gateway/v1/keys/remove", body: GatewayKeyRemoveRequest(fingerprint: fingerprint),
                           timeout: .seconds(30))
    }

    private func post<Body: Encodable, Result: Decodable>(_ path: String, _ body: Body) async throws -> Result {
        try FlareJSON.decoder().decode(Result.self, from: try await send(path, body: body, timeout: .seconds(90)))
    }

    /// A GET (no body) or a JSON POST with the gateway token; the answer's body on a 2xx, else the
    /// control plane's error.
    private func send<Body: Encodable>(_ path: String, body: Body? = nil, timeout: TimeAmount) async throws -> Data
    {
        var request = HTTPClientRequest(url: baseURL + path)
        request.headers.add(name: "Authorization", value: "Bearer \(gatewayToken)")
        if let body {
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try FlareJSON.encoder().encode(body)))
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout)
        } catch {
            throw APIError.unavailable("the control plane at \(baseURL) is unreachable: \(error)",
                                       code: "control_plane_unreachable")
        }
        guard (200..<300).contains(response.status.code) else { throw try await Self.apiError(response) }
        return Data(buffer: try await response.body.collect(upTo: 1 << 20))
    }

    /// The control plane's error passed on with its status, code and message.
    static func apiError(_ response: HTTPClientResponse) async throws -> APIError {
        let bytes = try await response.body.collect(upTo: 1 << 20)
        let body = try? FlareJSON.decoder().decode(ErrorBody.self, from: Data(buffer: bytes))
        var error = APIError(.init(code: Int(response.status.code)), code: body?.error.code ?? "control_plane_error",
                             body?.error.message ?? "the control plane answered \(response.status.code)")
        if error.status == .unauthorized { error.headers[.wwwAuthenticate] = "Bearer" }
        return error
    }
}

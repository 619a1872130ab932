import AsyncHTTPClient
import Crypto
import FlareClient
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
    let client: FlareClient
    /// Reads the revocation stream; its read timeout (``streamClientConfiguration``) notices a
    /// stream gone silent, since the control plane sends a keepalive line every 10 s.
    let streamClient: FlareClient
    let logger: Logger

    /// The revocation stream's client settings: a stream silent for 30 s is presumed dead and reopened.
    public static var streamClientConfiguration: HTTPClient.Configuration {
        HTTPClient.Configuration(timeout: .init(connect: .seconds(5), read: .seconds(30)))
    }

    public init(baseURL: String, gatewayToken: String, client: HTTPClient = .shared, streamClient: HTTPClient,
                logger: Logger) {
        self.client = FlareClient(baseURL: baseURL, token: gatewayToken, http: client, timeout: .seconds(90))
        self.streamClient = FlareClient(baseURL: baseURL, token: gatewayToken, http: streamClient,
                                        timeout: .hours(24 * 365))
        self.logger = logger
    }

    /// Registers the terminal bridge's service key; returns the key runtime tokens are checked with.
    public func register(serviceKey: String, name: String) async throws -> RuntimeTokenVerifier {
        let response = try await linked {
            try await client.call(Endpoints.GatewayLink.register, GatewayRegisterRequest(serviceKey: serviceKey, name: name))
        }
        guard let raw = Data(base64Encoded: response.runtimeTokenPublicKey),
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
        else { throw APIError.unavailable("the control plane sent an unusable runtime-token key") }
        return RuntimeTokenVerifier(publicKey: key)
    }

    public func resolve(_ claims: RuntimeTokenClaims, token: String) async throws -> ResolvedSession {
        let response = try await linked {
            try await client.call(Endpoints.GatewayLink.resolve, GatewayResolveRequest(token: token))
        }
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
        let response = try await linked { try await streamClient.open(Endpoints.GatewayLink.revocations) }
        opened()
        // Revocations published while the stream was down: re-check what is still open.
        let open = Array(gateway.connections.tokenIds)
        if !open.isEmpty {
            let check = try await linked {
                try await client.call(Endpoints.GatewayLink.check, GatewayCheckRequest(tokenIds: open))
            }
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
        try await linked { try await client.call(Endpoints.GatewayLink.keys, timeout: .seconds(30)) }
    }

    /// Removes a registered service key by fingerprint.
    public func removeKey(fingerprint: String) async throws {
        try await linked {
            try await client.call(Endpoints.GatewayLink.removeKey, GatewayKeyRemoveRequest(fingerprint: fingerprint),
                                  timeout: .seconds(30))
        }
    }

    /// Runs a call, passing the control plane's refusal on with its status, code and message (a
    /// 401 keeps its `WWW-Authenticate`), and an unreachable control plane as a 503.
    private func linked<Result>(_ call: () async throws -> Result) async throws -> Result {
        do {
            return try await call()
        } catch let error as FlareClientError {
            switch error {
            case .refused(let status, let code, let message):
                var refusal = APIError(.init(code: status), code: code, message)
                if refusal.status == .unauthorized { refusal.headers[.wwwAuthenticate] = "Bearer" }
                throw refusal
            case .unreachable(let baseURL, let reason):
                throw APIError.unavailable("the control plane at \(baseURL) is unreachable: \(reason)",
                                           code: "control_plane_unreachable")
            case .unreadable(let reason):
                throw APIError.unavailable("the control plane's answer was not understood: \(reason)")
            }
        }
    }
}

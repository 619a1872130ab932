import AsyncHTTPClient
import FlareClient
import FlareContracts
import Foundation
import NIOWebSocket
import NIOCore
import NIOFoundationCompat

/// Turns the gateway's refusals and close frames into sentences for `flare ssh` and `ssh-proxy`.
enum GatewayRefusal {
    /// The upgrade failed: ask the gateway again without upgrading to read its JSON error
    /// (token expired, revoked, session deleted…), or say the gateway is unreachable.
    static func explain(gateway: String, path: String, token: String, session: String) async -> CLIError {
        var request = HTTPClientRequest(url: gateway + path)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(30)) else {
            return unreachable(gateway)
        }
        let bytes = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
        guard let body = try? FlareJSON.decoder().decode(ErrorBody.self, from: Data(buffer: bytes)) else {
            return CLIError("the gateway at \(gateway) refused the connection to \(session) (HTTP "
                + "\(response.status.code)); check `flare session get \(session)`")
        }
        switch body.error.code {
        case "expired":
            return CLIError("the runtime token for \(session) expired before the connection opened; try again "
                + "(is this machine's clock right?)")
        case "revoked":
            return CLIError("access to \(session) was revoked; connect again to get a new token")
        case "not_found":
            return CLIError("session \(session) does not exist any more (it was deleted)")
        default:
            return CLIError("the gateway refused the connection to \(session): \(body.error.message)")
        }
    }

    static func unreachable(_ gateway: String, _ error: (any Error)? = nil) -> CLIError {
        CLIError("cannot reach the gateway at \(gateway)\(error.map { " (\($0))" } ?? ""); is flare-server (or "
            + "flare-gateway) running? Set it with --url, FLARE_URL or FLARE_GATEWAY_URL.")
    }

    /// The gateway ended an open connection.
    static func explain(_ close: GatewayConnection.Close, session: String) -> String {
        let reason = close.reason
        switch close.code {
        case .policyViolation:
            return "the connection to \(session) was cut: \(reason.isEmpty ? "access revoked" : reason)"
        case .unexpectedServerError:
            return "the gateway lost \(session)\(reason.isEmpty ? "" : ": \(reason)")"
        default:
            return "the gateway closed the connection to \(session)\(reason.isEmpty ? "" : ": \(reason)")"
        }
    }
}

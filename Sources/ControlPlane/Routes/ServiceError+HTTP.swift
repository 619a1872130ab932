import FlareHTTP
import Hummingbird

/// The one place a service's refusal becomes an HTTP status.
extension ServiceError: APIErrorConvertible {
    var apiError: APIError {
        let status: HTTPResponse.Status = switch kind {
        case .invalid: .badRequest
        case .unauthenticated: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .conflict: .conflict
        case .tooLarge: .contentTooLarge
        case .corrupt: .unprocessableContent
        case .upstreamFailed: .badGateway
        case .unavailable: .serviceUnavailable
        }
        var error = APIError(status, code: code, message)
        if kind == .unauthenticated { error.headers[.wwwAuthenticate] = "Bearer" }
        return error
    }
}

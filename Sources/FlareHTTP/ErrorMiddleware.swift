import Hummingbird
import Logging

/// Turns every failure into the API's one JSON error shape: ``APIError`` as it is, Hummingbird's
/// own errors (unknown route, undecodable body, body too large) with their status, and anything
/// else into a 500 that is logged and leaks nothing.
public struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        do {
            var response = try await next(request, context)
            response.headers[.init("x-request-id")!] = context.id
            return response
        } catch {
            if let refusal = APIError.reported(error) {
                return try refusal.response(from: request, context: context)
            }
            if let error = error as? HTTPError {
                return try Self.translate(error).response(from: request, context: context)
            }
            context.logger.error("unhandled error", metadata: ["error": "\(String(reflecting: error))"])
            return try APIError(.internalServerError, code: "internal", "internal server error")
                .response(from: request, context: context)
        }
    }

    static func translate(_ error: HTTPError) -> APIError {
        switch error.status {
        case .notFound: APIError(.notFound, code: "not_found", error.body ?? "no such route")
        case .contentTooLarge: APIError(.contentTooLarge, code: "too_large", "request body too large")
        case .badRequest: APIError(.badRequest, code: "invalid_request", Self.describeDecoding(error.body))
        case .methodNotAllowed: APIError(.methodNotAllowed, code: "method_not_allowed", "method not allowed")
        default: APIError(error.status, code: "http_\(error.status.code)", error.body ?? error.status.reasonPhrase)
        }
    }

    static func describeDecoding(_ body: String?) -> String {
        guard let body, !body.isEmpty else { return "the request body is not valid JSON" }
        return body
    }
}

import FlareContracts
import Foundation
import Hummingbird

/// A failure the API reports to its caller, always as
/// `{"error":{"code":…,"message":…,"requestId":…}}` with the right status.
public struct APIError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    /// Stable machine-readable code.
    public let code: String
    /// A sentence for a person; never internal details.
    public let message: String
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public static func badRequest(_ message: String, code: String = "invalid_request") -> APIError {
        APIError(.badRequest, code: code, message)
    }

    public static func unauthorized(_ message: String = "authentication required", code: String = "unauthorized")
        -> APIError
    {
        var error = APIError(.unauthorized, code: code, message)
        error.headers[.wwwAuthenticate] = "Bearer"
        return error
    }

    public static func forbidden(_ message: String, code: String = "forbidden") -> APIError {
        APIError(.forbidden, code: code, message)
    }

    public static func notFound(_ what: String) -> APIError {
        APIError(.notFound, code: "not_found", "\(what) not found")
    }

    public static func conflict(_ message: String, code: String = "conflict") -> APIError {
        APIError(.conflict, code: code, message)
    }

    public static func unavailable(_ message: String, code: String = "unavailable") -> APIError {
        APIError(.serviceUnavailable, code: code, message)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = ErrorBody(code: code, message: message, requestId: context.id)
        let data = try FlareJSON.encoder().encode(body)
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        fields[.init("x-request-id")!] = context.id
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// An error of a layer below the API (a service's refusal) that knows which ``APIError`` it is.
public protocol APIErrorConvertible: Error {
    var apiError: APIError { get }
}

extension APIError {
    /// `error` as the API reports it, when it is an ``APIError`` or knows which one it is.
    public static func reported(_ error: any Error) -> APIError? {
        (error as? APIError) ?? (error as? any APIErrorConvertible)?.apiError
    }
}

extension Request {
    /// The token of an `Authorization: Bearer …` header: the one parser every BurstFlare server
    /// uses (access, agent, gateway and runtime tokens).
    public var bearerToken: String? {
        guard let header = headers[.authorization], header.lowercased().hasPrefix("bearer ") else { return nil }
        let token = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }
}

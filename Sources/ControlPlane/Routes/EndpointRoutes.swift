import FlareContracts
import Foundation
import Hummingbird
import NIOCore

/// What a route answers for an endpoint whose response is `Value`: the value as JSON (or the same
/// JSON already written by ``JSONWriter``), or no body, with a status and headers.
struct Answer<Value: Encodable & Sendable>: ResponseGenerator {
    enum Content {
        case value(Value)
        case written([UInt8])
        case empty
    }

    var status: HTTPResponse.Status
    var headers: HTTPFields
    let content: Content

    static func ok(_ value: Value, headers: HTTPFields = [:]) -> Answer {
        Answer(status: .ok, headers: headers, content: .value(value))
    }

    static func created(_ value: Value) -> Answer { Answer(status: .created, headers: [:], content: .value(value)) }

    static func accepted(_ value: Value) -> Answer { Answer(status: .accepted, headers: [:], content: .value(value)) }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var response: Response
        switch content {
        case .value(let value):
            response = try context.responseEncoder.encode(value, from: request, context: context)
            response.status = status
        case .written(let bytes):
            var fields = HTTPFields()
            fields.reserveCapacity(4 + headers.count)
            fields[.contentType] = "application/json; charset=utf-8"
            fields[.contentLength] = String(bytes.count)
            response = Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        case .empty:
            response = Response(status: status)
        }
        response.headers.append(contentsOf: headers)
        return response
    }
}

extension Answer where Value: EmptyAnswerable {
    /// 204: done, nothing to say (or, for an optional answer, nothing there).
    static var noContent: Answer { Answer(status: .noContent, headers: [:], content: .empty) }
}

extension Answer where Value: JSONWritable {
    /// The value written by ``JSONWriter``: the bytes `JSONEncoder` would give, faster.
    static func written(_ value: Value) -> Answer {
        Answer(status: .ok, headers: [:], content: .written(JSONWriter.encode(value)))
    }
}

extension Answer where Value == [SessionInfo] {
    /// A page of sessions the store's query already wrote as a JSON array.
    static func written(json: [UInt8], headers: HTTPFields) -> Answer {
        Answer(status: .ok, headers: headers, content: .written(json))
    }
}

/// Request bodies a route reads itself (none, or a raw stream) rather than have decoded as JSON.
protocol UndecodedBody {}
extension NoBody: UndecodedBody {}
extension RawBytes: UndecodedBody {}

extension HTTPVerb {
    var method: HTTPRequest.Method {
        switch self {
        case .get: .get
        case .post: .post
        case .put: .put
        case .patch: .patch
        case .delete: .delete
        }
    }
}

/// Routes are registered from ``Endpoints``: the method and path come from the contract, the body
/// arrives decoded as its request type, and the handler must answer with its response type.
extension RouterMethods {
    /// A JSON body in (decoded, at most `bodyLimit` bytes), a JSON answer out.
    @discardableResult
    func on<Path, Body: Decodable, Value: Encodable>(
        _ endpoint: Endpoint<Path, Body, Value>, bodyLimit: Int = 64 * 1024,
        use handler: @Sendable @escaping (Request, Context, Body) async throws -> Answer<Value>
    ) -> Self {
        on(RouterPath(endpoint.template), method: endpoint.method.method) { request, context in
            let body = try await request.decodeJSON(Body.self, context: context, limit: bodyLimit)
            return try await handler(request, context, body)
        }
    }

    /// No body (or a raw one the handler streams), a JSON answer out.
    @discardableResult
    func on<Path, Body: UndecodedBody, Value: Encodable>(
        _ endpoint: Endpoint<Path, Body, Value>,
        use handler: @Sendable @escaping (Request, Context) async throws -> Answer<Value>
    ) -> Self {
        on(RouterPath(endpoint.template), method: endpoint.method.method, use: handler)
    }

    /// An answer of raw bytes (an archive, a log, a stream) that the handler builds itself.
    @discardableResult
    func on<Path>(
        _ endpoint: Endpoint<Path, NoBody, RawBytes>,
        use handler: @Sendable @escaping (Request, Context) async throws -> Response
    ) -> Self {
        on(RouterPath(endpoint.template), method: endpoint.method.method, use: handler)
    }
}

import AsyncHTTPClient
import FlareContracts
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// The one client of the BurstFlare API: the CLI, the agent, a standalone gateway and the tests
/// call the control plane through it, with the ``Endpoints`` the server registers its routes from.
///
/// ```swift
/// let client = FlareClient(baseURL: "http://127.0.0.1:8080", token: accessToken)
/// let session = try await client.call(Endpoints.Sessions.create, SessionCreateRequest(name: "dev", template: "base"))
/// try await client.call(Endpoints.Sessions.stop.at(session.id))
/// ```
public struct FlareClient: Sendable {
    /// `http://host:port` or `http+unix://…` (no trailing slash).
    public let baseURL: String
    /// Sent as `Authorization: Bearer …`: an access, agent or gateway token.
    public let token: String?
    let http: HTTPClient
    /// How long a call may take unless the call says otherwise.
    let timeout: TimeAmount
    /// Sent as `User-Agent` (a sign-in lists it as its client).
    public let userAgent: String?
    /// The most a JSON answer may be.
    static let answerLimit = 16 << 20

    public init(baseURL: String, token: String?, http: HTTPClient = .shared, timeout: TimeAmount = .seconds(120),
                userAgent: String? = nil) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        self.http = http
        self.timeout = timeout
        self.userAgent = userAgent
    }

    /// The same server with another token.
    public func authenticated(_ token: String?) -> FlareClient {
        FlareClient(baseURL: baseURL, token: token, http: http, timeout: timeout, userAgent: userAgent)
    }

    // MARK: JSON calls

    /// Sends `body` as JSON; the decoded answer.
    @discardableResult
    public func call<Target: EndpointTarget>(_ target: Target, _ body: Target.Body, timeout: TimeAmount? = nil)
        async throws -> Target.Response where Target.Body: Encodable, Target.Response: Decodable
    {
        let json = try FlareJSON.encoder().encode(body)
        return try Self.decode(try await exchange(target, body: .bytes(ByteBuffer(data: json)),
                                                  contentType: "application/json", timeout: timeout))
    }

    /// A call without a body; the decoded answer.
    @discardableResult
    public func call<Target: EndpointTarget>(_ target: Target, timeout: TimeAmount? = nil) async throws
        -> Target.Response where Target.Body == NoBody, Target.Response: Decodable
    {
        try Self.decode(try await exchange(target, body: nil, contentType: nil, timeout: timeout))
    }

    /// Sends a raw body (an archive) with `headers`; the decoded answer.
    @discardableResult
    public func upload<Target: EndpointTarget>(_ target: Target, _ body: HTTPClientRequest.Body,
                                               contentType: String, headers: [(String, String)] = [],
                                               timeout: TimeAmount? = nil) async throws -> Target.Response
        where Target.Body == RawBytes, Target.Response: Decodable
    {
        try Self.decode(try await exchange(target, body: body, contentType: contentType, headers: headers,
                                           timeout: timeout))
    }

    // MARK: Lists

    /// One page of a list: its items, and the next page's target when there is one.
    public struct Page<Item: Sendable>: Sendable {
        public var items: [Item]
        public var next: EndpointAddress<NoBody, [Item]>?
    }

    /// One page of at most `limit` items (the server's default when nil).
    public func page<Target: EndpointTarget, Item: Decodable & Sendable>(_ target: Target, limit: Int? = nil)
        async throws -> Page<Item> where Target.Body == NoBody, Target.Response == [Item]
    {
        let paged = limit.map { target.query(["limit": String($0)]) } ?? target.address
        let answer = try await exchange(paged, body: nil, contentType: nil, timeout: nil)
        let next = answer.headers["Link"].lazy.compactMap(Self.nextLink).first
        return Page(items: try Self.decode(answer) as [Item], next: next.flatMap { target.nextPage($0) })
    }

    /// Every item of a list, following its `Link: <…>; rel="next"` headers page by page.
    public func all<Target: EndpointTarget, Item: Decodable & Sendable>(_ target: Target) async throws -> [Item]
        where Target.Body == NoBody, Target.Response == [Item]
    {
        var page = try await page(target, limit: 1000)
        var items = page.items
        while let next = page.next {
            page = try await self.page(next)
            items += page.items
        }
        return items
    }

    /// The target of a `Link` header's `rel="next"`: `</api/sessions?cursor=x>; rel="next"`.
    public static func nextLink(_ header: String) -> String? {
        for link in header.split(separator: ",") where link.contains(#"rel="next""#) {
            guard let start = link.firstIndex(of: "<"), let end = link.firstIndex(of: ">"), start < end else { continue }
            return String(link[link.index(after: start)..<end])
        }
        return nil
    }

    // MARK: Streams

    /// Opens an endpoint that answers with bytes (an archive, a log, an event stream); the response
    /// once its status is a success, for the caller to read. Any other status throws the server's error.
    public func open<Target: EndpointTarget>(_ target: Target, timeout: TimeAmount? = nil)
        async throws -> HTTPClientResponse where Target.Body == NoBody, Target.Response == RawBytes
    {
        let response = try await execute(target, body: nil, contentType: nil, headers: [], timeout: timeout)
        guard (200..<300).contains(response.status.code) else { throw try await Self.refusal(response) }
        return response
    }

    /// A text answer (a log), whole.
    public func text<Target: EndpointTarget>(_ target: Target, timeout: TimeAmount? = nil) async throws -> String
        where Target.Body == NoBody, Target.Response == RawBytes
    {
        let response = try await open(target, timeout: timeout)
        return String(buffer: try await response.body.collect(upTo: Self.answerLimit))
    }

    // MARK: Plumbing

    struct Answer {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    private func exchange(_ target: some EndpointTarget, body: HTTPClientRequest.Body?, contentType: String?,
                          headers: [(String, String)] = [], timeout: TimeAmount?) async throws -> Answer
    {
        let response = try await execute(target, body: body, contentType: contentType, headers: headers,
                                         timeout: timeout)
        guard (200..<300).contains(response.status.code) else { throw try await Self.refusal(response) }
        let bytes: ByteBuffer
        do {
            bytes = try await response.body.collect(upTo: Self.answerLimit)
        } catch {
            throw FlareClientError.unreadable("the answer of \(target.method.rawValue) \(target.path) was cut off (\(error))")
        }
        return Answer(status: response.status, headers: response.headers, body: bytes)
    }

    private func execute(_ target: some EndpointTarget, body: HTTPClientRequest.Body?, contentType: String?,
                         headers: [(String, String)], timeout: TimeAmount?) async throws
        -> HTTPClientResponse
    {
        var request = HTTPClientRequest(url: baseURL + target.path)
        request.method = HTTPMethod(rawValue: target.method.rawValue)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let userAgent { request.headers.add(name: "User-Agent", value: userAgent) }
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = body
        do {
            return try await http.execute(request, timeout: timeout ?? self.timeout)
        } catch {
            throw FlareClientError.unreachable(baseURL: baseURL, reason: "\(error)")
        }
    }

    static func decode<Response: Decodable>(_ answer: Answer) throws -> Response {
        if answer.body.readableBytes == 0, let empty = Response.self as? any EmptyAnswerable.Type {
            return empty.emptyAnswer as! Response
        }
        do {
            return try FlareJSON.decoder().decode(Response.self, from: Data(buffer: answer.body))
        } catch {
            throw FlareClientError.unreadable("the server's answer was not understood (\(error))")
        }
    }

    /// The server's error for a response whose status is not a success.
    static func refusal(_ response: HTTPClientResponse) async throws -> FlareClientError {
        let bytes = (try? await response.body.collect(upTo: 1 << 20)) ?? ByteBuffer()
        let status = Int(response.status.code)
        if let body = try? FlareJSON.decoder().decode(ErrorBody.self, from: Data(buffer: bytes)) {
            return .refused(status: status, code: body.error.code, message: body.error.message)
        }
        return .refused(status: status, code: "http_\(status)",
                        message: "the server answered \(status) \(response.status.reasonPhrase)")
    }
}

/// Why a call did not get the answer it wanted.
public enum FlareClientError: Error, Sendable, CustomStringConvertible {
    /// No HTTP answer: the server is down, the address is wrong, the call timed out.
    case unreachable(baseURL: String, reason: String)
    /// The server answered with an error: its status, code (`session_not_found`) and message.
    case refused(status: Int, code: String, message: String)
    /// An answer that does not decode as the endpoint's response (a client and server of different versions).
    case unreadable(String)

    /// The HTTP status, when the server answered.
    public var status: Int? {
        if case .refused(let status, _, _) = self { return status }
        return nil
    }

    /// The error's code, when the server answered.
    public var code: String? {
        if case .refused(_, let code, _) = self { return code }
        return nil
    }

    public var description: String {
        switch self {
        case .unreachable(let baseURL, let reason): "cannot reach \(baseURL) (\(reason))"
        case .refused(_, _, let message): message
        case .unreadable(let reason): reason
        }
    }
}

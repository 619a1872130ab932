import Foundation

/// An HTTP method of the BurstFlare API.
public enum HTTPVerb: String, Sendable, CaseIterable {
    case get = "GET"
    case post = "POST"
    case put = "PUT"
    case patch = "PATCH"
    case delete = "DELETE"
}

/// How many `{name}` parameters an endpoint's path has; ``Endpoint/at(_:)`` takes that many values,
/// so a call with too few or too many does not compile.
public protocol PathShape: Sendable {
    static var count: Int { get }
}

public enum NoParameters: PathShape { public static var count: Int { 0 } }
public enum OneParameter: PathShape { public static var count: Int { 1 } }
public enum TwoParameters: PathShape { public static var count: Int { 2 } }

/// The request of an endpoint that takes no body.
public struct NoBody: Sendable {}

/// The response of an endpoint that answers 204 No Content.
public struct NoContent: Codable, Sendable, Equatable {
    public init() {}
}

/// A body that is not JSON: a streamed archive or log, sent or read as bytes.
public enum RawBytes: Sendable {}

/// The answer of a WebSocket upgrade route (the gateway's SSH relay and terminal).
public enum WebSocketUpgrade: Sendable {}

/// One route of the API: its method, its path (`/api/sessions/{session}`), what it takes and what
/// it answers. The control plane registers its routes from these values and every client calls
/// through them, so a route renamed here is renamed everywhere, and one removed breaks the build.
public struct Endpoint<Path: PathShape, Body: Sendable, Response: Sendable>: Sendable {
    public let method: HTTPVerb
    /// The path with its `{name}` parameters, in the router's syntax.
    public let template: String

    init(_ method: HTTPVerb, _ template: String) {
        self.method = method
        self.template = template
    }

    /// The `{name}` parameters of ``template``, in order.
    public var parameterNames: [String] {
        template.split(separator: "/").compactMap { part in
            part.hasPrefix("{") && part.hasSuffix("}") ? String(part.dropFirst().dropLast()) : nil
        }
    }

    /// The template with `values` put in place of its parameters, each escaped as one path segment.
    func fill(_ values: [String]) -> EndpointAddress<Body, Response> {
        var remaining = values[...]
        let path = template.split(separator: "/", omittingEmptySubsequences: false).map { part -> String in
            guard part.hasPrefix("{"), part.hasSuffix("}"), let value = remaining.popFirst() else { return String(part) }
            return Self.escapedSegment(value)
        }.joined(separator: "/")
        return EndpointAddress(method: method, path: path)
    }

    /// One path segment, whatever `value` holds: `/`, `?`, `#` and `;` are escaped, and so are the
    /// dots of `.` and `..` (which a URL parser would otherwise resolve into another route).
    static func escapedSegment(_ value: String) -> String {
        if value == "." || value == ".." { return String(repeating: "%2E", count: value.count) }
        return value.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/;?#")))
            ?? value
    }
}

extension Endpoint where Path == OneParameter {
    /// The endpoint for one resource: `Endpoints.Sessions.get.at(id)`.
    public func at(_ value: String) -> EndpointAddress<Body, Response> { fill([value]) }
}

extension Endpoint where Path == TwoParameters {
    /// The endpoint for one resource inside another: `Endpoints.Snapshots.delete.at(session, snapshot)`.
    public func at(_ first: String, _ second: String) -> EndpointAddress<Body, Response> { fill([first, second]) }
}

/// Something a client can call: a method and a concrete path, with the endpoint's body and response types.
public protocol EndpointTarget: Sendable {
    associatedtype Body: Sendable
    associatedtype Response: Sendable
    var method: HTTPVerb { get }
    /// The path and query, escaped.
    var path: String { get }
}

extension Endpoint: EndpointTarget where Path == NoParameters {
    public var path: String { template }
}

/// An endpoint with its parameters filled in (and perhaps a query).
public struct EndpointAddress<Body: Sendable, Response: Sendable>: EndpointTarget {
    public let method: HTTPVerb
    public let path: String
}

extension EndpointTarget {
    /// This target as an address.
    public var address: EndpointAddress<Body, Response> { EndpointAddress(method: method, path: path) }

    /// The next page of this list, as the server named it in a `Link` header; nil unless it is
    /// this same list (another path is not followed).
    public func nextPage(_ link: String) -> EndpointAddress<Body, Response>? {
        let base = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
        guard link.split(separator: "?", maxSplits: 1).first.map(String.init) == base else { return nil }
        return EndpointAddress(method: method, path: link)
    }

    /// The same target with `items` added as its query (`?lines=200&follow=true`).
    public func query(_ items: KeyValuePairs<String, String>) -> EndpointAddress<Body, Response> {
        query(items.map { ($0.key, $0.value) })
    }

    public func query(_ items: [(String, String)]) -> EndpointAddress<Body, Response> {
        guard !items.isEmpty else { return EndpointAddress(method: method, path: path) }
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+;#")
        let encoded = items.map { name, value in
            "\(name.addingPercentEncoding(withAllowedCharacters: allowed) ?? name)="
                + (value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value)
        }.joined(separator: "&")
        return EndpointAddress(method: method, path: path + (path.contains("?") ? "&" : "?") + encoded)
    }
}

/// A response that a 204 (no body) also answers: ``NoContent``, or an optional that is then nil
/// (the agent's command poll when no command came).
public protocol EmptyAnswerable {
    static var emptyAnswer: Self { get }
}

extension NoContent: EmptyAnswerable {
    public static var emptyAnswer: NoContent { NoContent() }
}

extension Optional: EmptyAnswerable {
    public static var emptyAnswer: Wrapped? { nil }
}

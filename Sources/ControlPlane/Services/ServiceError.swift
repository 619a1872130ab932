/// What the control plane's services refuse, in words a user reads, with a stable code. Services
/// know nothing of HTTP: the API maps each kind to a status in one place
/// (`Routes/ServiceError+HTTP.swift`).
struct ServiceError: Error, Equatable, CustomStringConvertible {
    enum Kind: Equatable, CaseIterable {
        /// The request itself is wrong (400).
        case invalid
        /// No valid credentials came with it (401).
        case unauthenticated
        /// Not allowed for this caller (403).
        case forbidden
        /// No such thing, or not the caller's (404: the two look the same).
        case notFound
        /// The thing is not in a state that allows it (409).
        case conflict
        /// Over a size or storage limit (413).
        case tooLarge
        /// Stored data no longer matches what it was (422): never handed out damaged.
        case corrupt
        /// A session's agent or the runtime failed to do it (502).
        case upstreamFailed
        /// Cannot be done now; try again (503).
        case unavailable
    }

    let kind: Kind
    let code: String
    let message: String

    init(_ kind: Kind, code: String, _ message: String) {
        self.kind = kind
        self.code = code
        self.message = message
    }

    var description: String { message }

    static func notFound(_ what: String) -> ServiceError {
        ServiceError(.notFound, code: "not_found", "\(what) not found")
    }

    static func invalid(_ message: String, code: String = "invalid_request") -> ServiceError {
        ServiceError(.invalid, code: code, message)
    }

    static func conflict(_ message: String, code: String = "conflict") -> ServiceError {
        ServiceError(.conflict, code: code, message)
    }
}

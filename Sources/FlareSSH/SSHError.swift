import CLibSSH

/// The one error type of the libssh wrapper: a kind to compare against, plus the C error text
/// captured when the failure happened.
public struct SSHError: Error, CustomStringConvertible, Sendable {
    enum Kind: Sendable, Equatable {
        case keyGeneration, keyImport, keyExport, bind, accept, keyExchange, channel, closed, io, connect,
            hostKeyMismatch, authentication
    }

    let kind: Kind
    /// What libssh (or the OS) said at the moment of the failure.
    public let message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    init(_ kind: Kind, session: ssh_session?, _ context: String) {
        let detail = session.map { String(cString: ssh_get_error(UnsafeMutableRawPointer($0))) } ?? ""
        self.init(kind, detail.isEmpty ? context : "\(context): \(detail)")
    }

    public var description: String { "SSHError.\(kind): \(message)" }

    public static let keyGeneration = SSHError(.keyGeneration, "")
    public static let keyImport = SSHError(.keyImport, "")
    public static let bind = SSHError(.bind, "")
    public static let accept = SSHError(.accept, "")
    public static let keyExchange = SSHError(.keyExchange, "")
    public static let channel = SSHError(.channel, "")
    public static let closed = SSHError(.closed, "")
    public static let connect = SSHError(.connect, "")
    public static let hostKeyMismatch = SSHError(.hostKeyMismatch, "")
    public static let authentication = SSHError(.authentication, "")

    /// Errors compare by kind, so `error ~= SSHError.keyExchange` works whatever the message.
    public static func ~= (pattern: SSHError, value: any Error) -> Bool {
        (value as? SSHError)?.kind == pattern.kind
    }
}

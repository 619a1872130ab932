/// The one error type of the Snapshot module: a kind to compare against and a message naming the
/// entry or the libarchive error at fault.
public struct SnapshotError: Error, CustomStringConvertible, Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        case io, archive, unsafeEntry, limitExceeded, corrupt
    }

    let kind: Kind
    public let message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    /// Reading or writing files failed.
    public static let io = SnapshotError(.io, "")
    /// libarchive refused to write the archive.
    public static let archive = SnapshotError(.archive, "")
    /// An entry tried to leave the persisted paths, or is a device, FIFO or socket.
    public static let unsafeEntry = SnapshotError(.unsafeEntry, "")
    /// The archive is larger, or has more entries, than a restore allows.
    public static let limitExceeded = SnapshotError(.limitExceeded, "")
    /// The archive is not a complete, readable snapshot.
    public static let corrupt = SnapshotError(.corrupt, "")

    /// Errors are equal when they are of the same kind, whatever their messages.
    public static func == (lhs: SnapshotError, rhs: SnapshotError) -> Bool {
        lhs.kind == rhs.kind
    }

    public static func ~= (pattern: SnapshotError, value: any Error) -> Bool {
        (value as? SnapshotError)?.kind == pattern.kind
    }
}

import FlareContracts
import Foundation

/// The gateway's open relays, so taking access away cuts connections that are already open.
public final class LiveConnections: @unchecked Sendable {
    private struct Entry {
        let claims: RuntimeTokenClaims
        let close: @Sendable (Revocation) -> Void
    }

    private let lock = NSLock()
    private var entries: [UUID: Entry] = [:]

    public init() {}

    /// How many relays are open.
    public var count: Int { lock.withLock { entries.count } }

    /// The runtime-token ids of open relays (to re-check after a gap in the revocation stream).
    public var tokenIds: Set<String> { lock.withLock { Set(entries.values.map(\.claims.id)) } }

    func register(_ claims: RuntimeTokenClaims, close: @escaping @Sendable (Revocation) -> Void) -> UUID {
        let id = UUID()
        lock.withLock { entries[id] = Entry(claims: claims, close: close) }
        return id
    }

    func unregister(_ id: UUID) {
        _ = lock.withLock { entries.removeValue(forKey: id) }
    }

    /// Closes every open relay the revocation matches; returns how many it closed.
    @discardableResult
    public func close(_ revocation: Revocation) -> Int {
        let closing = lock.withLock { entries.values.filter { revocation.matches($0.claims) } }
        closing.forEach { $0.close(revocation) }
        return closing.count
    }
}

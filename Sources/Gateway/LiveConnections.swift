import FlareContracts
import Foundation

/// The gateway's open relays, so taking access away cuts connections that are already open.
public final class LiveConnections: @unchecked Sendable {
    private struct Entry {
        let claims: RuntimeTokenClaims
        let close: @Sendable () -> Void
    }

    private let lock = NSLock()
    private var entries: [UUID: Entry] = [:]

    public init() {}

    /// How many relays are open.
    public var count: Int { lock.withLock { entries.count } }

    func register(_ claims: RuntimeTokenClaims, close: @escaping @Sendable () -> Void) -> UUID {
        let id = UUID()
        lock.withLock { entries[id] = Entry(claims: claims, close: close) }
        return id
    }

    func unregister(_ id: UUID) {
        _ = lock.withLock { entries.removeValue(forKey: id) }
    }

    /// Closes every open relay whose token matches; returns how many it closed.
    @discardableResult
    public func close(where matches: (RuntimeTokenClaims) -> Bool) -> Int {
        let closing = lock.withLock { entries.values.filter { matches($0.claims) } }
        closing.forEach { $0.close() }
        return closing.count
    }
}

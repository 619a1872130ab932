import FlareContracts
import Foundation
import NIOConcurrencyHelpers

/// The gateway's open relays, so taking access away cuts connections that are already open, and
/// one sweep (rather than a timer per connection) closes the idle ones.
public final class LiveConnections: @unchecked Sendable {
    private struct Entry {
        let claims: RuntimeTokenClaims
        let lastActivity: NIOLockedValueBox<ContinuousClock.Instant>
        let close: @Sendable (RelayEnding) -> Void
    }

    private let lock = NSLock()
    private var entries: [UUID: Entry] = [:]
    /// Revocations of the last ``RuntimeToken/maximumLifetime``: a connection whose token was
    /// issued before one of them, checked before it arrived, and registered after it, is closed as
    /// it registers.
    private var recent: [(revocation: Revocation, at: ContinuousClock.Instant)] = []
    static let recentCapacity = 10_000

    public init() {}

    /// How many relays are open.
    public var count: Int { lock.withLock { entries.count } }

    /// The runtime-token ids of open relays (to re-check after a gap in the revocation stream).
    public var tokenIds: Set<String> { lock.withLock { Set(entries.values.map(\.claims.id)) } }

    func register(_ claims: RuntimeTokenClaims, lastActivity: NIOLockedValueBox<ContinuousClock.Instant>,
                  close: @escaping @Sendable (RelayEnding) -> Void) -> UUID {
        let id = UUID()
        let revoked = lock.withLock {
            entries[id] = Entry(claims: claims, lastActivity: lastActivity, close: close)
            return recent.first { $0.revocation.precedes(claims) }?.revocation
        }
        if let revoked { close(.revoked(revoked.reason)) }
        return id
    }

    func unregister(_ id: UUID) {
        _ = lock.withLock { entries.removeValue(forKey: id) }
    }

    /// Closes every open relay the revocation matches; returns how many it closed.
    @discardableResult
    public func close(_ revocation: Revocation) -> Int {
        let closing = lock.withLock {
            let now = ContinuousClock.now
            recent.removeAll { now - $0.at > .seconds(RuntimeToken.maximumLifetime) }
            if recent.count >= Self.recentCapacity { recent.removeFirst(recent.count / 2) }
            recent.append((revocation, now))
            return entries.values.filter { revocation.matches($0.claims) }
        }
        closing.forEach { $0.close(.revoked(revocation.reason)) }
        return closing.count
    }

    /// Closes relays with no traffic for `timeout`; returns how many.
    @discardableResult
    func closeIdle(timeout: Duration, now: ContinuousClock.Instant = .now) -> Int {
        let idle = lock.withLock {
            entries.values.filter { now - $0.lastActivity.withLockedValue { $0 } >= timeout }
        }
        idle.forEach { $0.close(.idle(timeout)) }
        return idle.count
    }
}

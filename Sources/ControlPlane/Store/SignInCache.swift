import Foundation
import GRDB
import Synchronization

/// Recently answered access-token lookups, so an API call does not read the database twice (once
/// to sign in, once for what it asked). Correct by construction rather than by care:
///
/// - Any committed write to `access_tokens` or `users`, by any code path, empties it before the
///   writer's call returns (a GRDB transaction observer), so a logout is refused on the next call.
/// - A lookup that was reading while such a write committed does not store its (older) answer.
/// - An entry is used for at most ``lifetime``, and never past its token's expiry.
final class SignInCache: Sendable {
    /// Who a token signs in, and under which sign-in (nil for tokens from before sign-ins).
    struct SignedIn: Sendable {
        let user: UserRecord
        let signInId: String?
    }

    struct Entry: Sendable {
        let signedIn: SignedIn
        let expiresAt: Date
        let cachedAt: ContinuousClock.Instant
    }

    struct State: ~Copyable {
        var entries: [String: Entry] = [:]
        /// Bumped by every commit that touched the observed tables.
        var generation: UInt64 = 0
    }

    static let lifetime: Duration = .seconds(5)
    static let capacity = 10_000
    private let state = Mutex(State())

    /// The cached sign-in of a live token, if any.
    func signedIn(tokenHash: String, now: Date) -> SignedIn? {
        state.withLock { state in
            guard let entry = state.entries[tokenHash] else { return nil }
            guard entry.expiresAt > now, ContinuousClock.now - entry.cachedAt < Self.lifetime else {
                state.entries[tokenHash] = nil
                return nil
            }
            return entry.signedIn
        }
    }

    /// The generation a lookup starts from; pass it to ``store(_:tokenHash:expiresAt:readAt:)``.
    var generation: UInt64 { state.withLock { $0.generation } }

    /// Keeps a lookup's answer unless the observed tables changed since `generation`.
    func store(_ signedIn: SignedIn, tokenHash: String, expiresAt: Date, readAt generation: UInt64) {
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.entries.count >= Self.capacity { state.entries.removeAll(keepingCapacity: true) }
            state.entries[tokenHash] = Entry(signedIn: signedIn, expiresAt: expiresAt, cachedAt: .now)
        }
    }

    fileprivate func invalidate() {
        state.withLock { state in
            state.generation &+= 1
            state.entries.removeAll()
        }
    }

    /// Watches `database` for commits that change accounts or tokens.
    func observe(_ database: any DatabaseWriter) {
        database.add(transactionObserver: Observer(cache: self), extent: .databaseLifetime)
    }

    private final class Observer: TransactionObserver {
        let cache: SignInCache
        var changed = false

        init(cache: SignInCache) { self.cache = cache }

        func observes(eventsOfKind eventKind: DatabaseEventKind) -> Bool {
            ["access_tokens", "users"].contains(eventKind.tableName)
        }

        func databaseDidChange(with event: DatabaseEvent) { changed = true }

        func databaseDidCommit(_ db: Database) {
            if changed { cache.invalidate() }
            changed = false
        }

        func databaseDidRollback(_ db: Database) { changed = false }
    }
}

import Foundation

/// Bytes promised to snapshot uploads still in flight, per account: the quota check and the
/// promise are one step, so parallel uploads cannot together pass a quota that has room for one.
final class StorageReservations: @unchecked Sendable {
    struct Reservation: Sendable {
        let owner: String
        let bytes: Int64
    }

    private let lock = NSLock()
    private var reserved: [String: Int64] = [:]

    /// Promises `bytes` to `owner` if `used` (what is stored) plus what is promised already plus
    /// `bytes` stays within `limit`; nil otherwise.
    func reserve(owner: String, bytes: Int64, used: Int64, limit: Int64) -> Reservation? {
        lock.withLock {
            let promised = reserved[owner, default: 0]
            guard bytes >= 0, used + promised + bytes <= limit else { return nil }
            reserved[owner] = promised + bytes
            return Reservation(owner: owner, bytes: bytes)
        }
    }

    /// What `owner` may still promise: the limit less what is stored and promised.
    func available(owner: String, used: Int64, limit: Int64) -> Int64 {
        lock.withLock { max(0, limit - used - reserved[owner, default: 0]) }
    }

    func release(_ reservation: Reservation) {
        lock.withLock {
            let left = reserved[reservation.owner, default: 0] - reservation.bytes
            reserved[reservation.owner] = left > 0 ? left : nil
        }
    }
}

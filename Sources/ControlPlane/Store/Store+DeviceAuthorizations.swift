import FlareContracts
import Foundation
import GRDB

/// A device sign-in's state (RFC 8628). The only moves: a pending code is approved or denied by a
/// signed-in user, and an approved one is used once by the device's poll. Expiry is not a state:
/// a code past `expires_at` answers `expired_token` whatever it was.
enum DeviceAuthorizationState: String, Codable, CaseIterable, Sendable, DatabaseValueConvertible {
    case pending, approved, denied, used

    enum Event: CaseIterable, Sendable {
        case approve, deny, use
    }

    /// The state after `event`, or nil when the event is refused.
    func after(_ event: Event) -> DeviceAuthorizationState? {
        switch (self, event) {
        case (.pending, .approve): .approved
        case (.pending, .deny): .denied
        case (.approved, .use): .used
        default: nil
        }
    }
}

struct DeviceAuthorizationRecord: FlareRecord {
    static let databaseTableName = "device_authorizations"
    var deviceCodeHash: String
    var userCode: String
    var state: DeviceAuthorizationState
    var userId: String?
    var address: String
    var client: String
    var intervalSeconds: Int
    var createdAt: Date
    var expiresAt: Date
    var lastPolledAt: Date?
}

extension Store {
    /// What a device's poll came to.
    enum DevicePoll: Sendable {
        case pending
        /// Polled sooner than its interval: the interval is now `interval` seconds.
        case slowDown(interval: Int)
        /// Approved by `user`, and now used: the caller signs the device in.
        case approved(user: UserRecord, address: String, client: String)
        case denied
        case expired
        case unknown
    }

    /// What a user's decision came to.
    enum DeviceDecision: Sendable {
        case decided(DeviceAuthorizationRecord)
        /// Not pending any more (decided before, or used).
        case alreadyDecided
        case expired
        case unknown
    }

    func insertDeviceAuthorization(_ record: DeviceAuthorizationRecord) async throws {
        try await write { try record.insert($0) }
    }

    /// The device's poll: one transaction that checks its pace and, once approved, uses the code.
    func pollDeviceAuthorization(deviceCodeHash hash: String, at now: Date) async throws -> DevicePoll {
        try await write { db in
            guard var record = try DeviceAuthorizationRecord.fetchOne(db, key: hash) else { return .unknown }
            guard record.expiresAt > now else { return .expired }
            if let last = record.lastPolledAt, now.timeIntervalSince(last) < Double(record.intervalSeconds) - 0.5 {
                // RFC 8628 3.5: slow_down adds 5 seconds to the interval.
                record.intervalSeconds += 5
                record.lastPolledAt = now
                try record.update(db)
                return .slowDown(interval: record.intervalSeconds)
            }
            switch record.state {
            case .pending:
                record.lastPolledAt = now
                try record.update(db)
                return .pending
            case .denied:
                return .denied
            case .used:
                return .expired
            case .approved:
                guard let next = record.state.after(.use), let userId = record.userId,
                      let user = try UserRecord.fetchOne(db, key: userId)
                else { return .unknown }
                record.state = next
                record.lastPolledAt = now
                try record.update(db)
                return .approved(user: user, address: record.address, client: record.client)
            }
        }
    }

    /// A signed-in user approves (`.approve`) or denies (`.deny`) the pending code `userCode`.
    func decideDeviceAuthorization(userCode: String, userId: String, _ event: DeviceAuthorizationState.Event,
                                   at now: Date) async throws -> DeviceDecision {
        try await write { db in
            guard var record = try DeviceAuthorizationRecord.filter(Column("user_code") == userCode).fetchOne(db)
            else { return .unknown }
            guard record.expiresAt > now else { return .expired }
            guard let next = record.state.after(event) else { return .alreadyDecided }
            record.state = next
            record.userId = userId
            try record.update(db)
            return .decided(record)
        }
    }

    /// The pending, unexpired code `userCode`, if there is one.
    func pendingDeviceAuthorization(userCode: String, at now: Date) async throws -> DeviceAuthorizationRecord? {
        try await read { db in
            try DeviceAuthorizationRecord.filter(Column("user_code") == userCode && Column("state") == DeviceAuthorizationState.pending.rawValue
                && Column("expires_at") > now).fetchOne(db)
        }
    }

    /// Drops device codes that expired more than a day ago.
    func purgeDeviceAuthorizations(before date: Date) async throws {
        try await write { db in
            _ = try DeviceAuthorizationRecord.filter(Column("expires_at") < date).deleteAll(db)
        }
    }
}

import FlareContracts
import Foundation
import GRDB

/// The control plane's persistent state in SQLite (WAL), reached through GRDB.
///
/// Every method is one transaction. Concrete today; the methods are the seam a PostgreSQL store
/// will implement when several control-plane replicas share one database.
public final class Store: Sendable {
    /// A WAL pool on a file (the server), or one in-memory connection (unit tests): the same
    /// schema, SQL and transactions either way.
    let database: any DatabaseWriter
    /// Answered sign-ins, emptied by every commit to accounts or tokens.
    let signIns = SignInCache()

    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    public init(path: String) throws {
        var configuration = Self.configuration
        configuration.prepareDatabase { db in
            // An acknowledged write survives a crash of the process or the machine.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        database = try DatabasePool(path: path, configuration: configuration)
        try Migrations.migrator.migrate(database)
        signIns.observe(database)
    }

    /// A new, empty store in memory, gone with the value: real SQLite for fast tests of the
    /// services, with nothing on disk.
    public static func inMemory() throws -> Store {
        try Store(database: DatabaseQueue(configuration: configuration))
    }

    private init(database: any DatabaseWriter) throws {
        self.database = database
        try Migrations.migrator.migrate(database)
        signIns.observe(database)
    }

    private static var configuration: Configuration {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(5)
        return configuration
    }

    /// Names of the migrations applied so far, in order.
    public func appliedMigrations() throws -> [String] {
        try database.read { try Migrations.migrator.appliedMigrations($0) }
    }

    func read<T: Sendable>(_ body: @Sendable @escaping (Database) throws -> T) async throws -> T {
        try await database.read(body)
    }

    func write<T: Sendable>(_ body: @Sendable @escaping (Database) throws -> T) async throws -> T {
        do {
            return try await database.write(body)
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE {
            throw StoreError.duplicate
        }
    }
}

/// Store failures the API turns into statuses.
enum StoreError: Error, Equatable {
    /// A unique constraint was violated (taken email, name, key…).
    case duplicate
    /// A list's cursor does not name an item of that list.
    case unknownCursor
    /// A write tried to change a session's state other than through its state machine.
    case stateChangeOutsideMachine
}

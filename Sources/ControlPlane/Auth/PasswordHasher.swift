import Foundation
import HummingbirdBcrypt
import NIOPosix

/// bcrypt, run on NIO's blocking thread pool so hashing never stalls the async executor.
struct PasswordHasher: Sendable {
    let cost: UInt8
    /// A hash of a random password at ``cost``, for logins of unknown emails.
    private let decoy = DecoyHash()

    init(cost: UInt8) {
        self.cost = cost
    }

    func hash(_ password: String) async throws -> String {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    func verify(_ password: String, hash: String) async throws -> Bool {
        try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: hash) }
    }

    /// Spends the time of one verification at this cost and returns false: a login for an unknown
    /// email takes as long as a wrong password, so timing does not tell which emails have accounts.
    func verifyNothing(_ password: String) async throws -> Bool {
        let (decoy, cost) = (self.decoy, self.cost)
        let hash = try await NIOThreadPool.singleton.runIfActive { decoy.hash(cost: cost) }
        _ = try await verify(password, hash: hash)
        return false
    }
}

/// A bcrypt hash of a random password, made on first use.
final class DecoyHash: @unchecked Sendable {
    private let lock = NSLock()
    private var made: String?

    func hash(cost: UInt8) -> String {
        lock.withLock {
            if let made { return made }
            let hash = Bcrypt.hash(UUID().uuidString, cost: cost)
            made = hash
            return hash
        }
    }
}

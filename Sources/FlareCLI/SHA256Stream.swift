import Crypto
import FlareClient
import FlareContracts
import Foundation

/// SHA-256 over data that arrives in pieces.
struct SHA256Stream {
    private var hasher = SHA256()

    mutating func update(_ data: Data) { hasher.update(data: data) }

    var hex: String { hasher.finalize().hex }
}

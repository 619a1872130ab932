import Crypto
import Foundation

/// The control plane's Ed25519 key for runtime tokens, kept in the data directory (mode 0600)
/// and created on first start.
enum SigningKey {
    static func loadOrCreate(at url: URL) throws -> Curve25519.Signing.PrivateKey {
        if let data = try? Data(contentsOf: url) {
            return try Curve25519.Signing.PrivateKey(rawRepresentation: data)
        }
        let key = Curve25519.Signing.PrivateKey()
        let temporary = url.appendingPathExtension("tmp")
        FileManager.default.createFile(atPath: temporary.path, contents: key.rawRepresentation,
                                       attributes: [.posixPermissions: 0o600])
        guard rename(temporary.path, url.path) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
        }
        return key
    }
}

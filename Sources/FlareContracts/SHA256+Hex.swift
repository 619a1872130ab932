import Crypto

extension SHA256.Digest {
    /// Lowercase hex, as snapshot digests and stored secret hashes are written everywhere.
    public var hex: String { map { String(format: "%02x", $0) }.joined() }
}

/// The WebSocket masking XOR (RFC 6455 §5.3), a 64-bit word at a time.
public enum WebSocketMasking {
    /// XORs `bytes` with the 4-byte `key`, starting at key index 0.
    public static func apply(_ key: [UInt8], to bytes: UnsafeMutableRawBufferPointer) {
        precondition(key.count == 4, "a WebSocket masking key is 4 bytes")
        guard let base = bytes.baseAddress else { return }
        var word: UInt64 = 0
        withUnsafeMutableBytes(of: &word) { for index in 0..<8 { $0[index] = key[index % 4] } }
        let count = bytes.count
        var offset = 0
        while offset + 8 <= count {
            let value = base.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            base.storeBytes(of: value ^ word, toByteOffset: offset, as: UInt64.self)
            offset += 8
        }
        while offset < count {
            bytes[offset] ^= key[offset % 4]
            offset += 1
        }
    }
}

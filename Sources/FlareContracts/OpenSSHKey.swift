import Crypto
import Foundation

/// An SSH public key as written in `authorized_keys`, parsed and checked without libssh.
public struct SSHPublicKey: Sendable, Equatable {
    /// Key types users may register.
    public static let allowedTypes: Set<String> = [
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    ]

    public let type: String
    public let blob: Data
    public let comment: String

    /// Parses `TYPE BASE64 [comment]`; the blob must name the same type.
    public init?(line: String) {
        let fields = line.trimmingCharacters(in: .whitespacesAndNewlines)
            .split(maxSplits: 2, whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 2, Self.allowedTypes.contains(String(fields[0])),
              let blob = Data(base64Encoded: String(fields[1])), blob.count >= 4
        else { return nil }
        var reader = SSHWireReader(blob)
        guard let innerType = reader.readString(), String(decoding: innerType, as: UTF8.self) == fields[0] else {
            return nil
        }
        if fields[0] == "ssh-ed25519" {
            guard let key = reader.readString(), key.count == 32, reader.isAtEnd else { return nil }
        }
        self.type = String(fields[0])
        self.blob = blob
        self.comment = fields.count > 2 ? String(fields[2]) : ""
    }

    /// `TYPE BASE64`, without the comment.
    public var line: String { "\(type) \(blob.base64EncodedString())" }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    public var fingerprint: String {
        "SHA256:" + Data(SHA256.hash(data: blob)).base64EncodedString().replacingOccurrences(of: "=", with: "")
    }
}

/// A freshly generated Ed25519 key pair in OpenSSH's own formats.
public struct OpenSSHKeyPair: Sendable {
    /// `-----BEGIN OPENSSH PRIVATE KEY-----` text (unencrypted), as `ssh-keygen` writes it.
    public let privateKeyText: String
    /// `ssh-ed25519 AAAA… comment`.
    public let publicKeyLine: String

    /// Generates a new Ed25519 key.
    public static func generateEd25519(comment: String = "") -> OpenSSHKeyPair {
        let key = Curve25519.Signing.PrivateKey()
        let publicBytes = key.publicKey.rawRepresentation
        var publicBlob = SSHWireWriter()
        publicBlob.writeString("ssh-ed25519")
        publicBlob.writeString(publicBytes)

        var rng = SystemRandomNumberGenerator()
        let check = UInt32.random(in: .min ... .max, using: &rng)
        var secret = SSHWireWriter()
        secret.writeUInt32(check)
        secret.writeUInt32(check)
        secret.writeString("ssh-ed25519")
        secret.writeString(publicBytes)
        secret.writeString(key.rawRepresentation + publicBytes)
        secret.writeString(comment)
        var pad: UInt8 = 1
        while secret.bytes.count % 8 != 0 {
            secret.bytes.append(pad)
            pad += 1
        }

        var file = SSHWireWriter()
        file.bytes.append(contentsOf: Array("openssh-key-v1".utf8) + [0])
        file.writeString("none")
        file.writeString("none")
        file.writeString(Data())
        file.writeUInt32(1)
        file.writeString(publicBlob.bytes)
        file.writeString(secret.bytes)

        let base64 = Data(file.bytes).base64EncodedString()
        var lines = ["-----BEGIN OPENSSH PRIVATE KEY-----"]
        var index = base64.startIndex
        while index < base64.endIndex {
            let end = base64.index(index, offsetBy: 70, limitedBy: base64.endIndex) ?? base64.endIndex
            lines.append(String(base64[index..<end]))
            index = end
        }
        lines.append("-----END OPENSSH PRIVATE KEY-----")
        let publicLine = "ssh-ed25519 " + Data(publicBlob.bytes).base64EncodedString()
        return OpenSSHKeyPair(
            privateKeyText: lines.joined(separator: "\n") + "\n",
            publicKeyLine: comment.isEmpty ? publicLine : publicLine + " " + comment)
    }
}

/// SSH wire encoding (RFC 4251): big-endian lengths and strings.
struct SSHWireWriter {
    var bytes: [UInt8] = []

    mutating func writeUInt32(_ value: UInt32) {
        bytes.append(contentsOf: [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff),
                                  UInt8(value & 0xff)])
    }

    mutating func writeString(_ value: some Collection<UInt8>) {
        writeUInt32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func writeString(_ value: String) {
        writeString(Array(value.utf8))
    }
}

struct SSHWireReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ data: Data) {
        bytes = Array(data)
    }

    var isAtEnd: Bool { offset == bytes.count }

    mutating func readString() -> [UInt8]? {
        guard bytes.count - offset >= 4 else { return nil }
        let length = bytes[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
        offset += 4
        guard length <= bytes.count - offset else { return nil }
        defer { offset += length }
        return Array(bytes[offset..<offset + length])
    }
}

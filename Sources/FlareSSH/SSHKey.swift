import CLibSSH
import Foundation

/// An SSH key (public, or private with its public half) owned by one Swift object.
public final class SSHKey: @unchecked Sendable {
    let handle: ssh_key

    init(owning handle: ssh_key) {
        self.handle = handle
    }

    deinit {
        ssh_key_free(handle)
    }

    /// Generates a new Ed25519 private key.
    public static func generateEd25519() throws -> SSHKey {
        SSHLibrary.ensureInitialized()
        var key: ssh_key?
        guard ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) == SSH_OK, let key else {
            throw SSHError(.keyGeneration, "could not generate an ed25519 key")
        }
        return SSHKey(owning: key)
    }

    /// Loads a private key from an OpenSSH or PEM file (unencrypted).
    public convenience init(privateKeyFile path: String) throws {
        SSHLibrary.ensureInitialized()
        var key: ssh_key?
        guard ssh_pki_import_privkey_file(path, nil, nil, nil, &key) == SSH_OK, let key else {
            throw SSHError(.keyImport, "could not read private key \(path)")
        }
        self.init(owning: key)
    }

    /// Loads a private key from its text (OpenSSH `-----BEGIN OPENSSH PRIVATE KEY-----` form).
    public convenience init(privateKeyText text: String) throws {
        SSHLibrary.ensureInitialized()
        var key: ssh_key?
        guard ssh_pki_import_privkey_base64(text, nil, nil, nil, &key) == SSH_OK, let key else {
            throw SSHError(.keyImport, "could not parse private key text")
        }
        self.init(owning: key)
    }

    /// Parses one public key as written in `authorized_keys`: `TYPE BASE64 [comment]`.
    public convenience init(publicKeyLine line: String) throws {
        SSHLibrary.ensureInitialized()
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count >= 2 else { throw SSHError(.keyImport, "not a public key line") }
        let type = ssh_key_type_from_name(String(fields[0]))
        guard type != SSH_KEYTYPE_UNKNOWN else {
            throw SSHError(.keyImport, "unknown key type \(fields[0])")
        }
        var key: ssh_key?
        guard ssh_pki_import_pubkey_base64(String(fields[1]), type, &key) == SSH_OK, let key else {
            throw SSHError(.keyImport, "malformed public key")
        }
        self.init(owning: key)
    }

    /// Writes the private key in OpenSSH format, readable by the owner only.
    public func writePrivateKey(to path: String) throws {
        unlink(path)
        guard ssh_pki_export_privkey_file(handle, nil, nil, nil, path) == SSH_OK else {
            throw SSHError(.keyExport, "could not write private key to \(path)")
        }
        chmod(path, 0o600)
    }

    /// The key's type name, e.g. `ssh-ed25519`.
    public var typeName: String {
        String(cString: ssh_key_type_to_char(ssh_key_type(handle)))
    }

    /// The public half as `TYPE BASE64`, as `authorized_keys` and `known_hosts` want it.
    public var publicKeyLine: String {
        var b64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(handle, &b64) == SSH_OK, let b64 else { return "" }
        defer { ssh_string_free_char(b64) }
        return "\(typeName) \(String(cString: b64))"
    }

    /// `SHA256:…` as OpenSSH prints it.
    public var fingerprint: String {
        var hash: UnsafeMutablePointer<UInt8>?
        var length = 0
        guard ssh_get_publickey_hash(handle, SSH_PUBLICKEY_HASH_SHA256, &hash, &length) == 0, hash != nil else {
            return ""
        }
        defer { ssh_clean_pubkey_hash(&hash) }
        guard let text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, length) else { return "" }
        defer { ssh_string_free_char(text) }
        return String(cString: text)
    }

    /// True when both keys have the same public half.
    public func matchesPublic(_ other: SSHKey) -> Bool {
        ssh_key_cmp(handle, other.handle, SSH_KEY_CMP_PUBLIC) == 0
    }
}

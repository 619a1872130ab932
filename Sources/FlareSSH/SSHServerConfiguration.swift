/// Algorithms and limits every BurstFlare SSH server uses.
///
/// Stricter than OpenSSH's defaults: curve25519 key exchange only, ed25519 host keys, AEAD or CTR
/// ciphers, and encrypt-then-MAC SHA-2 MACs.
public struct SSHServerConfiguration: Sendable {
    public var keyExchange = "curve25519-sha256,curve25519-sha256@libssh.org"
    public var hostKeyAlgorithms = "ssh-ed25519"
    public var ciphers =
        "chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr"
    public var macs = "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com"
    /// Failed public-key attempts (with a signature) allowed before the connection is dropped.
    public var maxAuthFailures = 6

    public init() {}
}

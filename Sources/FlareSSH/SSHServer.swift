import CLibSSH
import Foundation

/// Holds the host key and algorithm policy; turns accepted sockets into SSH server connections.
///
/// The listening socket is the caller's (Unix or TCP): ``accept(descriptor:)`` takes an already
/// accepted file descriptor, so one code path serves both.
public final class SSHServer: @unchecked Sendable {
    private let bind: ssh_bind
    private let lock = NSLock()
    public let configuration: SSHServerConfiguration
    public let hostKey: SSHKey

    /// - Parameters:
    ///   - hostKeyFile: path of an unencrypted private host key (ed25519).
    public init(hostKeyFile: String, configuration: SSHServerConfiguration = .init()) throws {
        SSHLibrary.ensureInitialized()
        self.hostKey = try SSHKey(privateKeyFile: hostKeyFile)
        guard let bind = ssh_bind_new() else { throw SSHError(.bind, "ssh_bind_new failed") }
        self.bind = bind
        self.configuration = configuration
        var ok = ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HOSTKEY, hostKeyFile) == SSH_OK
        ok = ok && ssh_bind_options_set(bind, SSH_BIND_OPTIONS_KEY_EXCHANGE, configuration.keyExchange) == SSH_OK
        ok = ok && ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HOSTKEY_ALGORITHMS, configuration.hostKeyAlgorithms) == SSH_OK
        ok = ok && ssh_bind_options_set(bind, SSH_BIND_OPTIONS_CIPHERS_C_S, configuration.ciphers) == SSH_OK
        ok = ok && ssh_bind_options_set(bind, SSH_BIND_OPTIONS_CIPHERS_S_C, configuration.ciphers) == SSH_OK
        ok = ok && ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HMAC_C_S, configuration.macs) == SSH_OK
        ok = ok && ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HMAC_S_C, configuration.macs) == SSH_OK
        if !ok {
            let message = String(cString: ssh_get_error(UnsafeMutableRawPointer(bind)))
            ssh_bind_free(bind)
            throw SSHError(.bind, "configuring the SSH server failed: \(message)")
        }
    }

    deinit {
        ssh_bind_free(bind)
    }

    /// Wraps an accepted socket in a new server connection. The connection owns `descriptor` from
    /// here on and must then be used from one thread only.
    public func accept(descriptor: Int32, delegate: any SSHServerConnectionDelegate) throws -> SSHServerConnection {
        guard let session = ssh_new() else {
            close(descriptor)
            throw SSHError(.accept, "ssh_new failed")
        }
        let rc = lock.withLock { ssh_bind_accept_fd(bind, session, descriptor) }
        guard rc == SSH_OK else {
            let error = SSHError(.accept, session: session, "accepting the connection failed")
            ssh_free(session)
            close(descriptor)
            throw error
        }
        setCloseOnExec(descriptor)
        return SSHServerConnection(session: session, configuration: configuration, delegate: delegate)
    }
}

import CLibSSH
import Foundation

/// A libssh client session over a socket someone else connected (the gateway's terminal bridge
/// reaching an agent's Unix socket).
///
/// Not thread-safe: create, use and drop it on one thread. Calls block, so that thread must not be
/// one of Swift's cooperative pool.
public final class SSHClientSession: @unchecked Sendable {
    let session: ssh_session
    /// The connected socket; closed with the session.
    public let socketDescriptor: Int32
    private var disconnected = false

    /// Takes ownership of `socket`; logs in as `user`.
    public init(connectedSocket socket: Int32, user: String) throws {
        SSHLibrary.ensureInitialized()
        guard let session = ssh_new() else {
            close(socket)
            throw SSHError(.connect, "ssh_new failed")
        }
        self.session = session
        self.socketDescriptor = socket
        setCloseOnExec(socket)
        var fd = socket
        var noConfig: Int32 = 0
        var ok = ssh_options_set(session, SSH_OPTIONS_FD, &fd) == SSH_OK
        ok = ok && ssh_options_set(session, SSH_OPTIONS_USER, user) == SSH_OK
        ok = ok && ssh_options_set(session, SSH_OPTIONS_HOST, "flare-agent") == SSH_OK
        ok = ok && ssh_options_set(session, SSH_OPTIONS_PROCESS_CONFIG, &noConfig) == SSH_OK
        ok = ok && ssh_options_set(session, SSH_OPTIONS_HOSTKEYS, "ssh-ed25519") == SSH_OK
        guard ok else {
            let error = SSHError(.connect, session: session, "cannot configure the SSH client")
            ssh_free(session)
            close(socket)
            throw error
        }
    }

    deinit {
        disconnect()
        ssh_free(session)
    }

    /// Runs the key exchange and checks the server's host key against `expectedHostKey`
    /// (`ssh-ed25519 AAAA…`); a different key is refused before anything is sent.
    public func handshake(expectedHostKey: String) throws {
        guard ssh_connect(session) == SSH_OK else { throw SSHError(.connect, session: session, "key exchange") }
        var serverKey: ssh_key?
        guard ssh_get_server_publickey(session, &serverKey) == SSH_OK, let serverKey else {
            throw SSHError(.hostKeyMismatch, session: session, "the server sent no host key")
        }
        let key = SSHKey(owning: serverKey)
        let expected = expectedHostKey.split(separator: " ").prefix(2).joined(separator: " ")
        guard key.publicKeyLine == expected else {
            throw SSHError(.hostKeyMismatch, "the agent's host key \(key.fingerprint) is not the session's")
        }
    }

    /// Public-key authentication with `key` (its private half).
    public func authenticate(with key: SSHKey) throws {
        let result = ssh_userauth_publickey(session, nil, key.handle)
        guard result == SSH_AUTH_SUCCESS.rawValue else {
            throw SSHError(.authentication, session: session, "the agent refused the service key")
        }
    }

    /// Opens a session channel with a PTY of `cols`×`rows` and starts the login shell.
    public func openShell(term: String, cols: Int, rows: Int) throws -> SSHClientChannel {
        guard let channel = ssh_channel_new(session) else {
            throw SSHError(.channel, session: session, "cannot create a channel")
        }
        let shell = SSHClientChannel(owning: channel, session: self)
        guard ssh_channel_open_session(channel) == SSH_OK else {
            throw SSHError(.channel, session: session, "cannot open a session channel")
        }
        guard ssh_channel_request_pty_size(channel, term, Int32(cols), Int32(rows)) == SSH_OK else {
            throw SSHError(.channel, session: session, "the agent refused a PTY")
        }
        guard ssh_channel_request_shell(channel) == SSH_OK else {
            throw SSHError(.channel, session: session, "the agent refused a shell")
        }
        return shell
    }

    /// Sends the disconnect message and closes the socket; idempotent.
    public func disconnect() {
        guard !disconnected else { return }
        disconnected = true
        ssh_disconnect(session)
    }
}

/// A client channel of an ``SSHClientSession``, used on the session's thread only.
public final class SSHClientChannel: @unchecked Sendable {
    let handle: ssh_channel
    /// Keeps the session alive as long as its channel.
    private let session: SSHClientSession
    private var freed = false

    init(owning handle: ssh_channel, session: SSHClientSession) {
        self.handle = handle
        self.session = session
    }

    deinit {
        free()
    }

    /// What a non-blocking read found.
    public enum ReadResult: Equatable {
        case data(Int)
        case wouldBlock
        case endOfFile
    }

    /// Reads whatever is already there (socket included) without waiting.
    public func readAvailable(into buffer: UnsafeMutableRawBufferPointer) throws -> ReadResult {
        let count = ssh_channel_read_nonblocking(handle, buffer.baseAddress, UInt32(buffer.count), 0)
        if count > 0 { return .data(Int(count)) }
        if count == SSH_ERROR { throw SSHError(.io, session: session.session, "reading the channel") }
        if ssh_channel_is_eof(handle) != 0 || ssh_channel_is_closed(handle) != 0 { return .endOfFile }
        return .wouldBlock
    }

    /// Writes all of `bytes` (blocking while the peer's window is shut).
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < bytes.count {
            let written = ssh_channel_write(handle, bytes.baseAddress! + offset, UInt32(bytes.count - offset))
            guard written > 0 else { throw SSHError(.io, session: session.session, "writing the channel") }
            offset += Int(written)
        }
    }

    /// Tells the remote PTY its new size.
    public func resize(cols: Int, rows: Int) throws {
        guard ssh_channel_change_pty_size(handle, Int32(cols), Int32(rows)) == SSH_OK else {
            throw SSHError(.channel, session: session.session, "resizing the PTY")
        }
    }

    /// The shell's exit status once the agent sent it.
    public var exitStatus: Int32? {
        let status = ssh_channel_get_exit_status(handle)
        return status >= 0 ? status : nil
    }

    /// Closes and frees the channel; idempotent.
    public func free() {
        guard !freed else { return }
        freed = true
        if ssh_channel_is_closed(handle) == 0 { ssh_channel_close(handle) }
        ssh_channel_free(handle)
    }
}

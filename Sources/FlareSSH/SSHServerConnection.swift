import CLibSSH
import Foundation
import Logging

/// One SSH connection, server side: key exchange, public-key auth and its channels, driven by an
/// event loop on the thread that owns it.
public final class SSHServerConnection {
    let session: ssh_session
    let configuration: SSHServerConfiguration
    private var callbacks: UnsafeMutablePointer<ssh_server_callbacks_struct>
    private weak var delegate: (any SSHServerConnectionDelegate)?
    private(set) var channels: [ObjectIdentifier: SSHChannel] = [:]
    private var authFailures = 0
    /// The event loop this connection's thread polls; other descriptors (child pipes, PTYs) join it.
    public let eventLoop: SSHEventLoop

    init(session: ssh_session, configuration: SSHServerConfiguration, delegate: any SSHServerConnectionDelegate) {
        self.session = session
        self.configuration = configuration
        self.delegate = delegate
        self.callbacks = .allocate(capacity: 1)
        self.callbacks.initialize(to: ssh_server_callbacks_struct())
        self.eventLoop = SSHEventLoop()
        flare_ssh_server_callbacks_init(callbacks)
        callbacks.pointee.userdata = Unmanaged.passUnretained(self).toOpaque()
        callbacks.pointee.auth_pubkey_function = { _, user, key, state, userdata in
            let connection = Unmanaged<SSHServerConnection>.fromOpaque(userdata!).takeUnretainedValue()
            return connection.authenticate(user: user.map { String(cString: $0) } ?? "", key: key, state: state)
        }
        callbacks.pointee.channel_open_request_session_function = { _, userdata in
            let connection = Unmanaged<SSHServerConnection>.fromOpaque(userdata!).takeUnretainedValue()
            return connection.openSessionChannel()
        }
        ssh_set_server_callbacks(session, callbacks)
        ssh_set_message_callback(session, { _, message, userdata in
            guard let message, let userdata else { return 1 }
            let connection = Unmanaged<SSHServerConnection>.fromOpaque(userdata).takeUnretainedValue()
            return connection.handle(message: message) ? 0 : 1
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        for channel in channels.values { channel.release() }
        channels.removeAll()
        eventLoop.detach(session: session)
        ssh_disconnect(session)
        ssh_free(session)
        callbacks.deinitialize(count: 1)
        callbacks.deallocate()
    }

    /// Runs the key exchange (blocking), then joins the event loop with public-key auth only.
    public func handshake() throws {
        guard ssh_handle_key_exchange(session) == SSH_OK else {
            throw SSHError(.keyExchange, session: session, "key exchange failed")
        }
        ssh_set_auth_methods(session, Int32(SSH_AUTH_METHOD_PUBLICKEY))
        eventLoop.attach(session: session)
    }

    /// True while the peer is connected or any channel still needs flushing.
    public var isConnected: Bool {
        let status = ssh_get_status(session)
        let closed = Int32(SSH_CLOSED) | Int32(SSH_CLOSED_ERROR)
        return status & closed == 0 && ssh_is_connected(session) != 0
    }

    /// Serves the connection until the peer disconnects or ``disconnect()`` is called.
    /// - Parameter pollInterval: milliseconds between ``SSHServerConnectionDelegate/connectionTick(_:)`` calls.
    public func run(pollInterval: Int32 = 100) {
        while isConnected {
            let rc = eventLoop.poll(timeoutMilliseconds: pollInterval)
            reapClosedChannels()
            delegate?.connectionTick(self)
            if rc == SSH_ERROR && !isConnected { break }
        }
        for channel in channels.values {
            channel.markPeerGone()
        }
        reapClosedChannels(force: true)
    }

    /// Ends the connection at once. Call between polls, not from a callback.
    public func disconnect() {
        // ssh_disconnect frees the session's channels itself: let go of ours first.
        for channel in channels.values { channel.markPeerGone() }
        reapClosedChannels(force: true)
        ssh_disconnect(session)
    }

    private func reapClosedChannels(force: Bool = false) {
        for (id, channel) in channels where force || channel.isFullyClosed {
            channel.delegate?.channelClosed(channel)
            channel.release()
            channels[id] = nil
        }
    }

    private func authenticate(user: String, key: ssh_key?, state: CChar) -> Int32 {
        guard let key, let delegate, let copy = copyPublicKey(key) else { return SSH_AUTH_DENIED.rawValue }
        let authorized = delegate.isAuthorized(user: user, key: copy)
        let probe = Int32(state) == SSH_PUBLICKEY_STATE_NONE.rawValue
        if authorized && (probe || Int32(state) == SSH_PUBLICKEY_STATE_VALID.rawValue) {
            return SSH_AUTH_SUCCESS.rawValue
        }
        // Clients offer each key first without a signature; an unknown key is refused (and
        // counted) right there, so that is where most failures are seen.
        authFailures += 1
        delegate.authenticationFailed(user: user, key: copy)
        if authFailures >= configuration.maxAuthFailures { ssh_disconnect(session) }
        return SSH_AUTH_DENIED.rawValue
    }

    private func copyPublicKey(_ key: ssh_key) -> SSHKey? {
        var b64: UnsafeMutablePointer<CChar>?
        guard ssh_pki_export_pubkey_base64(key, &b64) == SSH_OK, let b64 else { return nil }
        defer { ssh_string_free_char(b64) }
        let type = String(cString: ssh_key_type_to_char(ssh_key_type(key)))
        return try? SSHKey(publicKeyLine: "\(type) \(String(cString: b64))")
    }

    /// Handles requests libssh has no callback for; false lets libssh send its default refusal.
    private func handle(message: ssh_message) -> Bool {
        guard let delegate else { return false }
        let type = ssh_message_type(message)
        let subtype = ssh_message_subtype(message)
        if type == Int32(SSH_REQUEST_CHANNEL_OPEN.rawValue) && subtype == Int32(SSH_CHANNEL_DIRECT_TCPIP.rawValue) {
            let request = ForwardingRequest(
                host: ssh_message_channel_request_open_destination(message).map { String(cString: $0) } ?? "",
                port: Int(ssh_message_channel_request_open_destination_port(message)),
                originator: ssh_message_channel_request_open_originator(message).map { String(cString: $0) } ?? "",
                originatorPort: Int(ssh_message_channel_request_open_originator_port(message)))
            guard let factory = delegate.directTCPIPRequested(request),
                  let handle = ssh_message_channel_request_open_reply_accept(message)
            else { return false }
            register(SSHChannel(handle: handle, connection: self), factory: factory)
            return true
        }
        if type == Int32(SSH_REQUEST_GLOBAL.rawValue) {
            let address = ssh_message_global_request_address(message).map { String(cString: $0) } ?? ""
            let port = Int(ssh_message_global_request_port(message))
            switch subtype {
            case Int32(SSH_GLOBAL_REQUEST_TCPIP_FORWARD.rawValue):
                guard let bound = delegate.remoteForwardRequested(address: address, port: port) else { return false }
                ssh_message_global_request_reply_success(message, UInt16(clamping: bound))
                return true
            case Int32(SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD.rawValue):
                delegate.remoteForwardCancelled(address: address, port: port)
                ssh_message_global_request_reply_success(message, 0)
                return true
            default:
                return false
            }
        }
        return false
    }

    /// Opens a `forwarded-tcpip` channel to the client (a connection arrived on an `ssh -R` port).
    /// Blocks until the client answers; call it between polls, not from a callback.
    public func openForwardedTCPIP(
        address: String, port: Int, originator: String, originatorPort: Int,
        delegate factory: (SSHChannel) -> any SSHChannelDelegate
    ) -> SSHChannel? {
        guard let handle = ssh_channel_new(session) else { return nil }
        guard ssh_channel_open_reverse_forward(handle, address, Int32(port), originator, Int32(originatorPort))
                == SSH_OK
        else {
            ssh_channel_free(handle)
            return nil
        }
        let channel = SSHChannel(handle: handle, connection: self)
        register(channel, factory: factory)
        return channel
    }

    /// Opens an `auth-agent@openssh.com` channel to the client (`ssh -A`). Call between polls.
    public func openAuthAgentChannel(delegate factory: (SSHChannel) -> any SSHChannelDelegate) -> SSHChannel? {
        guard let handle = ssh_channel_new(session) else { return nil }
        guard ssh_channel_open_auth_agent(handle) == SSH_OK else {
            ssh_channel_free(handle)
            return nil
        }
        let channel = SSHChannel(handle: handle, connection: self)
        register(channel, factory: factory)
        return channel
    }

    private func register(_ channel: SSHChannel, factory: (SSHChannel) -> any SSHChannelDelegate) {
        channel.delegate = factory(channel)
        channels[ObjectIdentifier(channel)] = channel
    }

    private func openSessionChannel() -> ssh_channel? {
        guard let delegate, let handle = ssh_channel_new(session) else { return nil }
        let channel = SSHChannel(handle: handle, connection: self)
        guard let channelDelegate = delegate.openSessionChannel(channel) else {
            channel.release()
            return nil
        }
        channel.delegate = channelDelegate
        channels[ObjectIdentifier(channel)] = channel
        return handle
    }
}

import CLibSSH
import FlareSystem
import Foundation

/// One SSH channel of a server connection. Used only on the connection's thread.
///
/// The channel holds its delegate strongly until the channel is released, which breaks the
/// delegate's reference back to it.
public final class SSHChannel {
    let handle: ssh_channel
    private var callbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>
    public internal(set) var delegate: (any SSHChannelDelegate)?
    private unowned let connection: SSHServerConnection
    private var released = false
    private var remoteClosed = false
    private var localClosed = false
    private var sentEOF = false

    init(handle: ssh_channel, connection: SSHServerConnection) {
        self.handle = handle
        self.connection = connection
        self.callbacks = .allocate(capacity: 1)
        callbacks.initialize(to: ssh_channel_callbacks_struct())
        flare_ssh_channel_callbacks_init(callbacks)
        callbacks.pointee.userdata = Unmanaged.passUnretained(self).toOpaque()
        installCallbacks()
        ssh_set_channel_callbacks(handle, callbacks)
    }

    deinit {
        release()
        callbacks.deinitialize(count: 1)
        callbacks.deallocate()
    }

    /// The event loop of the connection this channel belongs to.
    public var eventLoop: SSHEventLoop { connection.eventLoop }

    /// How many bytes the client's window accepts right now.
    public var writableBytes: Int {
        guard !released, !localClosed, !remoteClosed else { return 0 }
        return Int(ssh_channel_window_size(handle))
    }

    /// True once the client closed the channel (or the connection went away).
    public var isFullyClosed: Bool { remoteClosed }

    /// Sends bytes as channel data (or extended stderr data). Callers keep `bytes.count` within
    /// ``writableBytes`` so the call never waits for the client's window.
    @discardableResult
    public func write(_ bytes: UnsafeRawBufferPointer, stderr: Bool = false) -> Bool {
        guard !released, !localClosed, !remoteClosed, let base = bytes.baseAddress, bytes.count > 0 else {
            return bytes.isEmpty
        }
        let rc = stderr
            ? ssh_channel_write_stderr(handle, base, UInt32(bytes.count))
            : ssh_channel_write(handle, base, UInt32(bytes.count))
        return rc == bytes.count
    }

    /// Convenience for small writes (messages, tests).
    @discardableResult
    public func write(_ bytes: [UInt8], stderr: Bool = false) -> Bool {
        bytes.withUnsafeBytes { write($0, stderr: stderr) }
    }

    /// Takes data the delegate left in libssh's buffer, reopening the client's window.
    /// Returns 0 when nothing is buffered.
    public func readBuffered(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard !released, let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        let n = ssh_channel_read_nonblocking(handle, base, UInt32(buffer.count), 0)
        return max(0, Int(n))
    }

    public func sendEOF() {
        guard !released, !sentEOF, !localClosed, !remoteClosed else { return }
        sentEOF = true
        ssh_channel_send_eof(handle)
    }

    public func sendExitStatus(_ status: Int32) {
        guard !released, !localClosed, !remoteClosed else { return }
        ssh_channel_request_send_exit_status(handle, status)
    }

    /// Reports a command killed by a signal (`name` without the `SIG` prefix, e.g. `TERM`).
    public func sendExitSignal(_ name: String, coreDumped: Bool, message: String = "") {
        guard !released, !localClosed, !remoteClosed else { return }
        ssh_channel_request_send_exit_signal(handle, name, coreDumped ? 1 : 0, message, "")
    }

    /// Sends EOF if not sent yet, then closes our side.
    public func close() {
        guard !released, !localClosed else { return }
        sendEOF()
        localClosed = true
        ssh_channel_close(handle)
    }

    func markPeerGone() {
        remoteClosed = true
    }

    /// Detaches callbacks and hands the channel back to libssh, which frees it once both sides
    /// have closed.
    func release() {
        guard !released else { return }
        released = true
        ssh_remove_channel_callbacks(handle, callbacks)
        ssh_channel_free(handle)
        delegate = nil
    }

    private static func from(_ userdata: UnsafeMutableRawPointer?) -> SSHChannel {
        Unmanaged<SSHChannel>.fromOpaque(userdata!).takeUnretainedValue()
    }

    private func installCallbacks() {
        callbacks.pointee.channel_data_function = { _, _, data, length, isStderr, userdata in
            let channel = SSHChannel.from(userdata)
            guard let delegate = channel.delegate, let data else { return Int32(length) }
            let taken = delegate.channel(channel, received: UnsafeRawBufferPointer(start: data, count: Int(length)),
                                         isStderr: isStderr != 0)
            return Int32(max(0, min(taken, Int(length))))
        }
        callbacks.pointee.channel_eof_function = { _, _, userdata in
            let channel = SSHChannel.from(userdata)
            channel.delegate?.channelReceivedEOF(channel)
        }
        callbacks.pointee.channel_close_function = { _, _, userdata in
            SSHChannel.from(userdata).remoteClosed = true
        }
        callbacks.pointee.channel_signal_function = { _, _, signal, userdata in
            let channel = SSHChannel.from(userdata)
            channel.delegate?.channel(channel, signal: signal.map { String(cString: $0) } ?? "")
        }
        callbacks.pointee.channel_pty_request_function = { _, _, term, width, height, pxWidth, pxHeight, userdata in
            let channel = SSHChannel.from(userdata)
            let request = PTYRequest(
                term: term.map { String(cString: $0) } ?? "xterm",
                size: TerminalSize(columns: Int(width), rows: Int(height),
                                   pixelWidth: Int(pxWidth), pixelHeight: Int(pxHeight)))
            return channel.delegate?.channel(channel, ptyRequest: request) == true ? 0 : -1
        }
        callbacks.pointee.channel_shell_request_function = { _, _, userdata in
            let channel = SSHChannel.from(userdata)
            return channel.delegate?.channelShellRequest(channel) == true ? 0 : 1
        }
        callbacks.pointee.channel_exec_request_function = { _, _, command, userdata in
            let channel = SSHChannel.from(userdata)
            let text = command.map { String(cString: $0) } ?? ""
            return channel.delegate?.channel(channel, execRequest: text) == true ? 0 : 1
        }
        callbacks.pointee.channel_subsystem_request_function = { _, _, name, userdata in
            let channel = SSHChannel.from(userdata)
            let text = name.map { String(cString: $0) } ?? ""
            return channel.delegate?.channel(channel, subsystemRequest: text) == true ? 0 : 1
        }
        callbacks.pointee.channel_env_request_function = { _, _, name, value, userdata in
            let channel = SSHChannel.from(userdata)
            let key = name.map { String(cString: $0) } ?? ""
            let text = value.map { String(cString: $0) } ?? ""
            return channel.delegate?.channel(channel, envRequest: key, value: text) == true ? 0 : 1
        }
        callbacks.pointee.channel_pty_window_change_function = { _, _, width, height, pxWidth, pxHeight, userdata in
            let channel = SSHChannel.from(userdata)
            channel.delegate?.channel(channel, windowChange: TerminalSize(
                columns: Int(width), rows: Int(height), pixelWidth: Int(pxWidth), pixelHeight: Int(pxHeight)))
            return 0
        }
        callbacks.pointee.channel_auth_agent_req_function = { _, _, userdata in
            let channel = SSHChannel.from(userdata)
            channel.delegate?.channelAuthAgentRequest(channel)
        }
        callbacks.pointee.channel_write_wontblock_function = { _, _, bytes, userdata in
            let channel = SSHChannel.from(userdata)
            channel.delegate?.channel(channel, canWrite: Int(bytes))
            return 0
        }
    }
}

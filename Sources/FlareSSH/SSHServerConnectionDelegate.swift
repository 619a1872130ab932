import FlareSystem

/// Decides what a server connection allows. Called on the connection's own thread.
public protocol SSHServerConnectionDelegate: AnyObject {
    /// Whether `key` may log in as `user`. Asked both for the client's probe and for the signed
    /// attempt; libssh has already verified the signature when it asks the second time.
    func isAuthorized(user: String, key: SSHKey) -> Bool
    /// Called after a signed attempt was refused, for logging.
    func authenticationFailed(user: String, key: SSHKey)
    /// A `session` channel was requested: return its delegate, or nil to refuse it.
    func openSessionChannel(_ channel: SSHChannel) -> (any SSHChannelDelegate)?
    /// Called once per turn of the event loop (at least every poll interval).
    func connectionTick(_ connection: SSHServerConnection)
    /// `direct-tcpip` (`ssh -L`): return a factory for the new channel's delegate to accept, nil to refuse.
    func directTCPIPRequested(_ request: ForwardingRequest) -> ((SSHChannel) -> any SSHChannelDelegate)?
    /// `tcpip-forward` (`ssh -R`): return the port now listening, or nil to refuse.
    func remoteForwardRequested(address: String, port: Int) -> Int?
    /// `cancel-tcpip-forward`.
    func remoteForwardCancelled(address: String, port: Int)
}

extension SSHServerConnectionDelegate {
    public func directTCPIPRequested(_ request: ForwardingRequest) -> ((SSHChannel) -> any SSHChannelDelegate)? { nil }
    public func remoteForwardRequested(address: String, port: Int) -> Int? { nil }
    public func remoteForwardCancelled(address: String, port: Int) {}
}

/// Where a forwarded connection goes and where it came from.
public struct ForwardingRequest: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var originator: String
    public var originatorPort: Int

    public init(host: String, port: Int, originator: String, originatorPort: Int) {
        self.host = host
        self.port = port
        self.originator = originator
        self.originatorPort = originatorPort
    }
}

/// Reacts to the requests and data of one channel. Called on the connection's thread.
public protocol SSHChannelDelegate: AnyObject {
    func channel(_ channel: SSHChannel, ptyRequest request: PTYRequest) -> Bool
    func channelShellRequest(_ channel: SSHChannel) -> Bool
    func channel(_ channel: SSHChannel, execRequest command: String) -> Bool
    func channel(_ channel: SSHChannel, subsystemRequest name: String) -> Bool
    func channel(_ channel: SSHChannel, envRequest name: String, value: String) -> Bool
    func channel(_ channel: SSHChannel, windowChange size: TerminalSize)
    func channel(_ channel: SSHChannel, signal name: String)
    /// `auth-agent-req@openssh.com` (`ssh -A`).
    func channelAuthAgentRequest(_ channel: SSHChannel)
    /// Data from the client. `bytes` is valid only during the call. Return how many bytes were
    /// taken; the rest stays in libssh's buffer (and the client's window stays closed) until
    /// ``SSHChannel/readBuffered(into:)`` drains it.
    func channel(_ channel: SSHChannel, received bytes: UnsafeRawBufferPointer, isStderr: Bool) -> Int
    func channelReceivedEOF(_ channel: SSHChannel)
    func channelClosed(_ channel: SSHChannel)
    /// The client's window has room again for `bytes` more bytes.
    func channel(_ channel: SSHChannel, canWrite bytes: Int)
}

extension SSHChannelDelegate {
    public func channel(_ channel: SSHChannel, ptyRequest request: PTYRequest) -> Bool { false }
    public func channelShellRequest(_ channel: SSHChannel) -> Bool { false }
    public func channel(_ channel: SSHChannel, execRequest command: String) -> Bool { false }
    public func channel(_ channel: SSHChannel, subsystemRequest name: String) -> Bool { false }
    public func channel(_ channel: SSHChannel, envRequest name: String, value: String) -> Bool { false }
    public func channel(_ channel: SSHChannel, windowChange size: TerminalSize) {}
    public func channel(_ channel: SSHChannel, signal name: String) {}
    public func channelAuthAgentRequest(_ channel: SSHChannel) {}
    public func channel(_ channel: SSHChannel, canWrite bytes: Int) {}
}

/// A client's `pty-req`.
public struct PTYRequest: Sendable, Equatable {
    public var term: String
    public var size: TerminalSize
}

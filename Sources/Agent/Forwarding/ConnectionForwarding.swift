import FlareSSH
import FlareSystem
import Foundation
import Logging

/// One connection's forwarding: `ssh -L` targets, `ssh -R` listeners inside the session, and the
/// `ssh -A` agent socket. Listeners are watched in the connection's event loop; connections on
/// them are accepted between polls, where opening a channel to the client may block.
final class ConnectionForwarding {
    private struct RemoteListener {
        let requestedAddress: String
        let listener: SocketListener
    }

    private let activity: AgentActivity
    private let logger: Logger
    private let register: (any ChannelTicking) -> Void
    private var remoteListeners: [Int: RemoteListener] = [:]
    private var readyRemotePorts: Set<Int> = []
    private var agentListener: SocketListener?
    private var agentDirectory: String?
    private var agentReady = false
    private weak var eventLoop: SSHEventLoop?
    /// Owns the agent socket when the agent runs as root (only that user may use it).
    private let user: SessionUser?

    init(eventLoop: SSHEventLoop?, activity: AgentActivity, logger: Logger, user: SessionUser? = nil,
         register: @escaping (any ChannelTicking) -> Void) {
        self.eventLoop = eventLoop
        self.user = user
        self.activity = activity
        self.logger = logger
        self.register = register
    }

    /// `ssh -L`: connect to the target from inside the session.
    func directTCPIP(_ request: ForwardingRequest) -> ((SSHChannel) -> any SSHChannelDelegate)? {
        guard let socket = SocketAddress.connect(host: request.host, port: request.port) else {
            logger.info("direct-tcpip refused: cannot connect", metadata: ["forward.target": "\(request.host):\(request.port)"])
            return nil
        }
        return { [activity, register] channel in
            let handler = SocketRelayHandler(channel: channel, socket: socket, activity: activity)
            register(handler)
            return handler
        }
    }

    /// `ssh -R`: listen on loopback inside the session (like sshd without GatewayPorts).
    func remoteForward(address: String, port: Int) -> Int? {
        let host = address == "::1" ? "::1" : "127.0.0.1"
        guard (0...65535).contains(port), let listener = try? SocketListener(.tcp(host: host, port: port)),
              case .tcp(_, let bound) = listener.address
        else { return nil }
        listener.setNonBlocking()
        remoteListeners[bound] = RemoteListener(requestedAddress: address, listener: listener)
        eventLoop?.add(descriptor: listener.fileDescriptor, events: SSHEventLoop.readable) { [weak self] _ in
            self?.readyRemotePorts.insert(bound)
        }
        return bound
    }

    func cancelRemoteForward(port: Int) {
        guard let entry = remoteListeners.removeValue(forKey: port) else { return }
        eventLoop?.remove(descriptor: entry.listener.fileDescriptor) { entry.listener.close() }
    }

    /// `ssh -A`: a private socket whose connections reach the client's agent. Returns its path.
    func agentSocketPath() -> String? {
        if let agentDirectory { return agentDirectory + "/agent.sock" }
        var template = Array("/tmp/ssh-flare-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { return nil }
        let directory = String(cString: made)
        guard let listener = try? SocketListener(.unix(path: directory + "/agent.sock")) else {
            rmdir(directory)
            return nil
        }
        chmod(directory + "/agent.sock", 0o600)
        if let user {
            user.own(directory)
            user.own(directory + "/agent.sock")
        }
        listener.setNonBlocking()
        agentDirectory = directory
        agentListener = listener
        eventLoop?.add(descriptor: listener.fileDescriptor, events: SSHEventLoop.readable) { [weak self] _ in
            self?.agentReady = true
        }
        return directory + "/agent.sock"
    }

    /// Accepts waiting connections and opens their channels to the client. Between polls only.
    func tick(_ connection: SSHServerConnection) {
        for port in readyRemotePorts {
            guard let entry = remoteListeners[port] else { continue }
            while let fd = entry.listener.acceptNow() {
                let (peer, peerPort) = SocketAddress.peer(of: fd)
                let opened = connection.openForwardedTCPIP(
                    address: entry.requestedAddress, port: port, originator: peer, originatorPort: peerPort
                ) { [activity, register] channel in
                    let handler = SocketRelayHandler(channel: channel, socket: fd, activity: activity)
                    register(handler)
                    return handler
                }
                if opened == nil { Glibc.close(fd) }
            }
        }
        readyRemotePorts.removeAll()
        if agentReady, let listener = agentListener {
            agentReady = false
            while let fd = listener.acceptNow() {
                let opened = connection.openAuthAgentChannel { [activity, register] channel in
                    let handler = SocketRelayHandler(channel: channel, socket: fd, activity: activity)
                    register(handler)
                    return handler
                }
                if opened == nil { Glibc.close(fd) }
            }
        }
    }

    /// Closes every listener and removes the agent socket's directory.
    func close() {
        for port in Array(remoteListeners.keys) { cancelRemoteForward(port: port) }
        if let listener = agentListener {
            eventLoop?.remove(descriptor: listener.fileDescriptor) { listener.close() }
            agentListener = nil
        }
        eventLoop?.applyChanges()
        if let agentDirectory { rmdir(agentDirectory) }
        agentDirectory = nil
    }
}

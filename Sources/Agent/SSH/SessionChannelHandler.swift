import FlareSSH
import FlareSystem
import Foundation
import Logging

/// Serves one `session` channel: PTY and env requests, then a shell, a command or the sftp
/// subsystem, relaying bytes between the channel and the child with backpressure both ways
/// (see ``ChannelInputPump`` and ``DescriptorOutputPump``).
final class SessionChannelHandler: SSHChannelDelegate {
    private let channel: SSHChannel
    private let environment: ShellEnvironment
    private let activity: AgentActivity
    private let logger: Logger
    private var pty: PTYRequest?
    private var clientVariables: [String: String] = [:]
    /// Extra variables the connection provides (e.g. SSH_AUTH_SOCK when agent forwarding is on).
    var connectionVariables: () -> [String: String] = { [:] }
    /// Called on `auth-agent-req@openssh.com`; returns false to refuse.
    var onAgentForwardingRequest: () -> Bool = { false }

    private var child: ChildProcess?
    private var exitStatus: ExitStatus?
    private var input: ChannelInputPump?
    private var output: DescriptorOutputPump?
    private var errorOutput: DescriptorOutputPump?
    private var watches: DescriptorWatches?
    private var clientSentEOF = false
    private var finished = false
    /// True once the channel is gone; the connection then forgets this handler.
    private(set) var isClosed = false

    init(channel: SSHChannel, environment: ShellEnvironment, activity: AgentActivity, logger: Logger) {
        self.channel = channel
        self.environment = environment
        self.activity = activity
        self.logger = logger
        activity.channelOpened()
    }

    // MARK: Requests

    func channel(_ channel: SSHChannel, ptyRequest request: PTYRequest) -> Bool {
        guard child == nil else { return false }
        pty = request
        return true
    }

    func channel(_ channel: SSHChannel, envRequest name: String, value: String) -> Bool {
        guard child == nil, environment.allowsClientVariable(name) else { return false }
        clientVariables[name] = value
        return true
    }

    func channelAuthAgentRequest(_ channel: SSHChannel) {
        _ = onAgentForwardingRequest()
    }

    func channelShellRequest(_ channel: SSHChannel) -> Bool {
        let shell = environment.shell
        return start([shell], argv0: "-" + (shell as NSString).lastPathComponent)
    }

    func channel(_ channel: SSHChannel, execRequest command: String) -> Bool {
        start([environment.shell, "-c", command])
    }

    func channel(_ channel: SSHChannel, subsystemRequest name: String) -> Bool {
        guard name == "sftp", pty == nil else { return false }
        return start(environment.sftpServerCommand)
    }

    func channel(_ channel: SSHChannel, windowChange size: TerminalSize) {
        pty?.size = size
        child?.resize(to: size)
    }

    func channel(_ channel: SSHChannel, signal name: String) {
        guard let number = Signals.byName[name] else { return }
        child?.signal(number)
    }

    private func start(_ arguments: [String], argv0: String? = nil) -> Bool {
        guard child == nil else { return false }
        let home = environment.realHome
        try? environment.createDirectory(home)
        var argv = arguments
        if let argv0 { argv[0] = argv0 }
        let started: ChildProcess
        do {
            var variables = clientVariables
            variables.merge(connectionVariables()) { _, new in new }
            let env = environment.environment(term: pty?.term, clientVariables: variables)
            started = try ChildProcess(executable: arguments[0], arguments: argv, environment: env,
                                       directory: home, io: pty.map { .terminal($0.size) } ?? .pipes,
                                       user: environment.user)
        } catch {
            logger.warning("could not start a command", metadata: ["error": "\(error)"])
            return false
        }
        child = started
        input = ChannelInputPump(descriptor: started.input, channel: channel)
        output = DescriptorOutputPump(descriptor: started.output, channel: channel, activity: activity)
        if started.errorOutput >= 0 {
            errorOutput = DescriptorOutputPump(descriptor: started.errorOutput, isStderr: true, channel: channel,
                                               activity: activity)
        }
        watches = DescriptorWatches(
            eventLoop: channel.eventLoop,
            owned: Set([started.input, started.output, started.errorOutput].filter { $0 >= 0 }))
        updateWatches()
        return true
    }

    // MARK: Data

    func channel(_ channel: SSHChannel, received bytes: UnsafeRawBufferPointer, isStderr: Bool) -> Int {
        activity.received(bytes.count)
        guard let input, !isStderr else { return bytes.count }
        let taken = input.receive(bytes)
        if !input.isOpen { closeInput() }
        updateWatches()
        return taken
    }

    func channelReceivedEOF(_ channel: SSHChannel) {
        clientSentEOF = true
        closeInputIfDrained()
    }

    func channel(_ channel: SSHChannel, canWrite bytes: Int) {
        let resumed = [output, errorOutput].compactMap { $0?.resumeIfWindowOpen() }.contains(true)
        if resumed { updateWatches() }
    }

    private func closeInputIfDrained() {
        guard clientSentEOF, let input, input.isOpen, input.isDrained, child?.isTerminal == false else { return }
        closeInput()
    }

    private func closeInput() {
        guard let input, let child else { return }
        input.close()
        if !child.isTerminal { watches?.release(input.descriptor) }
    }

    private func handle(fd: Int32, revents: Int16) {
        guard !finished else { return }
        let readable = revents & (SSHEventLoop.readable | Int16(POLLHUP) | Int16(POLLERR)) != 0
        if revents & SSHEventLoop.writable != 0, let input, fd == input.descriptor {
            input.flush()
            if !input.isOpen { closeInput() }
            closeInputIfDrained()
        }
        for pump in [output, errorOutput].compactMap({ $0 }) where readable && fd == pump.descriptor {
            if case .ended = pump.pump() { outputEnded(pump) }
        }
        updateWatches()
    }

    private func outputEnded(_ pump: DescriptorOutputPump) {
        pump.close()
        if child?.isTerminal == true { input?.close() }
        watches?.release(pump.descriptor)
    }

    private func updateWatches() {
        guard let watches else { return }
        var desired: [Int32: Int16] = [:]
        for pump in [output, errorOutput].compactMap({ $0 }) where pump.wantsReadable {
            desired[pump.descriptor, default: 0] |= SSHEventLoop.readable
        }
        if let input, input.wantsWritable { desired[input.descriptor, default: 0] |= SSHEventLoop.writable }
        watches.update(desired) { [unowned self] fd, revents in self.handle(fd: fd, revents: revents) }
    }

    // MARK: Between polls

    func tick() {
        _ = [output, errorOutput].compactMap { $0?.resumeIfWindowOpen() }
        input?.pullHeld()
        if let input, !input.isOpen, child?.isTerminal == false, watches?.owned.contains(input.descriptor) == true {
            closeInput()
        }
        closeInputIfDrained()
        updateWatches()
        finishIfDone()
    }

    private func finishIfDone() {
        guard let child, !finished else { return }
        if exitStatus == nil { exitStatus = child.pollExit() }
        guard let status = exitStatus else { return }
        if child.isTerminal, let output, output.isOpen {
            // The shell is gone: send what it left, then end even if a background job holds the tty.
            while output.isOpen, case .data = output.pump() {}
            if output.isOpen { outputEnded(output) }
        }
        guard output?.isOpen != true, errorOutput?.isOpen != true else { return }
        finished = true
        switch status {
        case .exited(let code): channel.sendExitStatus(code)
        case .signaled(let name, let core): channel.sendExitSignal(name, coreDumped: core)
        }
        channel.close()
    }

    // MARK: Teardown

    func channelClosed(_ channel: SSHChannel) {
        isClosed = true
        activity.channelClosed()
        guard let child else { return }
        if exitStatus == nil, child.pollExit() == nil {
            ProcessReaper.hangUp(child.pid)
        }
        input?.close()
        output?.close()
        errorOutput?.close()
        watches?.releaseAll()
        finished = true
        self.child = nil
    }
}

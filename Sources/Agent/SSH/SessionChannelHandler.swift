import FlareSSH
import Foundation
import Logging

/// Serves one `session` channel: PTY and env requests, then a shell, a command or the sftp
/// subsystem, relaying bytes between the channel and the child with backpressure both ways.
///
/// Client → child: bytes go straight to the child's stdin while it accepts them, then into a
/// bounded buffer; past that they stay in libssh's buffer, which keeps the client's window shut.
/// Child → client: the child's output is read only as far as the client's window allows.
final class SessionChannelHandler: SSHChannelDelegate {
    static let inputBufferLimit = 256 * 1024
    static let readChunk = 64 * 1024
    static let sftpServerPaths = ["/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server",
                                  "/usr/libexec/openssh/sftp-server", "/usr/lib/ssh/sftp-server"]

    private let channel: SSHChannel
    private let environment: ShellEnvironment
    private let activity: AgentActivity
    private let logger: Logger
    private var pty: PTYRequest?
    private var clientVariables: [String: String] = [:]

    private var child: ChildProcess?
    private var exitStatus: ExitStatus?
    private var pendingInput: [UInt8] = []
    private var libsshHoldsInput = false
    private var clientSentEOF = false
    private var inputOpen = false
    private var outputOpen = false
    private var errorOpen = false
    private var outputPaused = false
    private var watched: [Int32: Int16] = [:]
    /// Descriptors this handler still owns; each is closed exactly once, through ``release(_:)``.
    private var ownedDescriptors: Set<Int32> = []
    private var finished = false
    /// True once the channel is gone; the connection then forgets this handler.
    private(set) var isClosed = false
    private var readBuffer: [UInt8] = []

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

    func channelShellRequest(_ channel: SSHChannel) -> Bool {
        let shell = environment.shell
        let loginName = "-" + (shell as NSString).lastPathComponent
        return start([shell], argv0: loginName)
    }

    func channel(_ channel: SSHChannel, execRequest command: String) -> Bool {
        start([environment.shell, "-c", command])
    }

    func channel(_ channel: SSHChannel, subsystemRequest name: String) -> Bool {
        guard name == "sftp", pty == nil,
              let server = Self.sftpServerPaths.first(where: { access($0, X_OK) == 0 })
        else { return false }
        return start([server])
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
        try? FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        var argv = arguments
        if let argv0 { argv[0] = argv0 }
        do {
            let io: ChildProcess.IO = pty.map { .terminal($0.size) } ?? .pipes
            let env = environment.environment(term: pty?.term, clientVariables: clientVariables)
            child = try ChildProcess(executable: arguments[0], arguments: argv, environment: env, directory: home, io: io)
        } catch {
            logger.warning("could not start a command", metadata: ["error": "\(error)"])
            return false
        }
        inputOpen = true
        outputOpen = true
        errorOpen = child!.errorOutput >= 0
        ownedDescriptors = Set([child!.input, child!.output, child!.errorOutput].filter { $0 >= 0 })
        updateWatches()
        return true
    }

    // MARK: Client → child

    func channel(_ channel: SSHChannel, received bytes: UnsafeRawBufferPointer, isStderr: Bool) -> Int {
        activity.received(bytes.count)
        guard let child, inputOpen, !isStderr else { return bytes.count }
        var offset = 0
        if pendingInput.isEmpty {
            let n = Glibc.write(child.input, bytes.baseAddress!, bytes.count)
            if n > 0 {
                offset = n
            } else if n < 0 && errno != EAGAIN && errno != EINTR {
                closeInput()
                return bytes.count
            }
        }
        let room = Self.inputBufferLimit - pendingInput.count
        let take = min(room, bytes.count - offset)
        if take > 0 {
            pendingInput.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + take]))
        }
        if offset + take < bytes.count { libsshHoldsInput = true }
        updateWatches()
        return offset + take
    }

    func channelReceivedEOF(_ channel: SSHChannel) {
        clientSentEOF = true
        closeInputIfDrained()
    }

    private func flushInput() {
        guard let child, inputOpen else { return }
        while !pendingInput.isEmpty {
            let n = pendingInput.withUnsafeBytes { Glibc.write(child.input, $0.baseAddress!, $0.count) }
            if n > 0 {
                pendingInput.removeFirst(n)
            } else {
                if n < 0 && errno != EAGAIN && errno != EINTR { closeInput() }
                break
            }
        }
        closeInputIfDrained()
    }

    /// Pulls bytes left in libssh's buffer once ours has room. Runs between polls, never inside one.
    private func pullHeldInput() {
        guard libsshHoldsInput, inputOpen else { return }
        let room = Self.inputBufferLimit - pendingInput.count
        guard room > 0 else { return }
        var chunk = [UInt8](repeating: 0, count: room)
        let n = chunk.withUnsafeMutableBytes { channel.readBuffered(into: $0) }
        if n < room { libsshHoldsInput = false }
        if n > 0 {
            pendingInput.append(contentsOf: chunk[0..<n])
            flushInput()
        }
        closeInputIfDrained()
    }

    private func closeInputIfDrained() {
        guard clientSentEOF, inputOpen, pendingInput.isEmpty, !libsshHoldsInput, child?.isTerminal == false else {
            return
        }
        closeInput()
    }

    private func closeInput() {
        guard inputOpen, let child else { return }
        inputOpen = false
        pendingInput = []
        libsshHoldsInput = false
        if !child.isTerminal { release(child.input) }
    }

    // MARK: Child → client

    private func readOutput(from fd: Int32, stderr: Bool) {
        let window = channel.writableBytes
        guard window > 0 else {
            outputPaused = true
            return
        }
        let want = min(window, Self.readChunk)
        if readBuffer.count < want { readBuffer = [UInt8](repeating: 0, count: Self.readChunk) }
        let n = readBuffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, want) }
        if n > 0 {
            readBuffer.withUnsafeBytes { channel.write(UnsafeRawBufferPointer(rebasing: $0[0..<n]), stderr: stderr) }
            activity.sent(n)
        } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
            outputEnded(fd)
        }
    }

    private func outputEnded(_ fd: Int32) {
        guard let child else { return }
        if fd == child.errorOutput {
            errorOpen = false
        } else {
            outputOpen = false
            if child.isTerminal {
                inputOpen = false
                pendingInput = []
            }
        }
        release(fd)
    }

    func channel(_ channel: SSHChannel, canWrite bytes: Int) {
        if outputPaused && bytes > 0 {
            outputPaused = false
            updateWatches()
        }
    }

    // MARK: Event-loop bookkeeping

    /// Called between polls.
    func tick() {
        if outputPaused && channel.writableBytes > 0 {
            outputPaused = false
        }
        pullHeldInput()
        updateWatches()
        finishIfDone()
    }

    private func finishIfDone() {
        guard let child, !finished else { return }
        if exitStatus == nil { exitStatus = child.pollExit() }
        guard let status = exitStatus else { return }
        if child.isTerminal && outputOpen {
            // The shell is gone; send what it left, then end even if a background job holds the tty.
            while outputOpen && channel.writableBytes > 0 {
                let before = activity.snapshot.bytesOut
                readOutput(from: child.output, stderr: false)
                if activity.snapshot.bytesOut == before { break }
            }
            if outputOpen { outputEnded(child.output) }
        }
        guard !outputOpen, !errorOpen else { return }
        finished = true
        switch status {
        case .exited(let code): channel.sendExitStatus(code)
        case .signaled(let name, let core): channel.sendExitSignal(name, coreDumped: core)
        }
        channel.close()
    }

    private func updateWatches() {
        guard let child else { return }
        var desired: [Int32: Int16] = [:]
        if outputOpen && !outputPaused { desired[child.output, default: 0] |= SSHEventLoop.readable }
        if errorOpen && !outputPaused { desired[child.errorOutput, default: 0] |= SSHEventLoop.readable }
        if inputOpen && !pendingInput.isEmpty { desired[child.input, default: 0] |= SSHEventLoop.writable }
        for (fd, events) in desired where watched[fd] != events && ownedDescriptors.contains(fd) {
            watched[fd] = events
            channel.eventLoop.add(descriptor: fd, events: events) { [unowned self] revents in
                self.handle(fd: fd, revents: revents)
            }
        }
        for fd in watched.keys where desired[fd] == nil {
            watched[fd] = nil
            channel.eventLoop.remove(descriptor: fd)
        }
    }

    private func handle(fd: Int32, revents: Int16) {
        guard let child, !finished else { return }
        let readable = revents & (SSHEventLoop.readable | Int16(POLLHUP) | Int16(POLLERR)) != 0
        if revents & SSHEventLoop.writable != 0 && fd == child.input { flushInput() }
        if readable && fd == child.output && outputOpen { readOutput(from: fd, stderr: false) }
        if readable && fd == child.errorOutput && errorOpen { readOutput(from: fd, stderr: true) }
    }

    /// Stops watching `fd` and closes it once the event loop has let go of it.
    private func release(_ fd: Int32) {
        guard ownedDescriptors.remove(fd) != nil else { return }
        watched[fd] = nil
        channel.eventLoop.remove(descriptor: fd) { Glibc.close(fd) }
    }

    // MARK: Teardown

    func channelClosed(_ channel: SSHChannel) {
        isClosed = true
        activity.channelClosed()
        guard let child else { return }
        if exitStatus == nil, child.pollExit() == nil {
            ProcessReaper.hangUp(child.pid)
        }
        inputOpen = false
        outputOpen = false
        errorOpen = false
        ownedDescriptors.forEach(release)
        finished = true
        self.child = nil
    }
}

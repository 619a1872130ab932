import FlareSSH
import Foundation

/// Descriptor → client: reads only as much as the client's window accepts, so a slow client
/// holds the producer back instead of the agent buffering without bound.
final class DescriptorOutputPump {
    static let readChunk = 64 * 1024

    let descriptor: Int32
    let isStderr: Bool
    private unowned let channel: SSHChannel
    private let activity: AgentActivity
    private(set) var isOpen = true
    /// True while the client's window is shut; the descriptor is not watched then.
    private(set) var isPaused = false
    private var buffer = [UInt8](repeating: 0, count: readChunk)

    init(descriptor: Int32, isStderr: Bool = false, channel: SSHChannel, activity: AgentActivity) {
        self.descriptor = descriptor
        self.isStderr = isStderr
        self.channel = channel
        self.activity = activity
    }

    var wantsReadable: Bool { isOpen && !isPaused }

    enum ReadResult {
        case data(Int)
        case wouldBlock
        case paused
        case ended
    }

    /// Reads once and forwards what it got. `.ended` means EOF (or EIO from a PTY whose
    /// processes are gone); the pump is then closed.
    @discardableResult
    func pump() -> ReadResult {
        guard isOpen else { return .ended }
        let window = channel.writableBytes
        guard window > 0 else {
            isPaused = true
            return .paused
        }
        let want = min(window, Self.readChunk)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress!, want) }
        if n > 0 {
            _ = buffer.withUnsafeBytes { channel.write(UnsafeRawBufferPointer(rebasing: $0[0..<n]), stderr: isStderr) }
            activity.sent(n)
            return .data(n)
        }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return .wouldBlock }
        isOpen = false
        return .ended
    }

    /// Resumes reading when the client's window has room again. Returns true if it was paused.
    func resumeIfWindowOpen() -> Bool {
        guard isPaused, channel.writableBytes > 0 else { return false }
        isPaused = false
        return true
    }

    func close() {
        isOpen = false
    }
}

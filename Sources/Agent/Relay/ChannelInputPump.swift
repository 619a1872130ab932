import FlareSSH
import Foundation

/// Client → descriptor: bytes from the channel go straight into a non-blocking descriptor while it
/// takes them, then into a bounded buffer; past that they stay in libssh's buffer, which keeps the
/// client's window shut until ``pullHeld()`` drains it.
final class ChannelInputPump {
    static let bufferLimit = 256 * 1024

    let descriptor: Int32
    private unowned let channel: SSHChannel
    private var pending: [UInt8] = []
    private var libsshHoldsInput = false
    private(set) var isOpen = true

    init(descriptor: Int32, channel: SSHChannel) {
        self.descriptor = descriptor
        self.channel = channel
    }

    /// True while buffered bytes wait for the descriptor to become writable.
    var wantsWritable: Bool { isOpen && !pending.isEmpty }

    /// True once everything the client sent has been written.
    var isDrained: Bool { pending.isEmpty && !libsshHoldsInput }

    /// Takes what it can of `bytes`; returns how many it took. A write error closes the pump.
    func receive(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard isOpen else { return bytes.count }
        var offset = 0
        if pending.isEmpty {
            let n = Glibc.write(descriptor, bytes.baseAddress!, bytes.count)
            if n > 0 {
                offset = n
            } else if n < 0 && errno != EAGAIN && errno != EINTR {
                close()
                return bytes.count
            }
        }
        let take = min(Self.bufferLimit - pending.count, bytes.count - offset)
        if take > 0 {
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + take]))
        }
        if offset + take < bytes.count { libsshHoldsInput = true }
        return offset + take
    }

    /// Writes buffered bytes while the descriptor accepts them.
    func flush() {
        while isOpen && !pending.isEmpty {
            let n = pending.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress!, $0.count) }
            if n > 0 {
                pending.removeFirst(n)
            } else {
                if n < 0 && errno != EAGAIN && errno != EINTR { close() }
                return
            }
        }
    }

    /// Pulls bytes libssh still holds once the buffer has room. Call between polls only.
    func pullHeld() {
        guard libsshHoldsInput, isOpen else { return }
        let room = Self.bufferLimit - pending.count
        guard room > 0 else { return }
        var chunk = [UInt8](repeating: 0, count: room)
        let n = chunk.withUnsafeMutableBytes { channel.readBuffered(into: $0) }
        if n < room { libsshHoldsInput = false }
        if n > 0 {
            pending.append(contentsOf: chunk[0..<n])
            flush()
        }
    }

    /// Stops taking input and drops what is buffered (the descriptor is closed by its owner).
    func close() {
        isOpen = false
        pending = []
        libsshHoldsInput = false
    }
}

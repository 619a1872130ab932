import FlareSSH
import Foundation

/// Relays a connected socket and a channel both ways (forwarded ports, the forwarded SSH agent),
/// with half-close: EOF from one side becomes EOF on the other; the channel closes once both
/// directions have ended.
final class SocketRelayHandler: SSHChannelDelegate, ChannelTicking {
    private let channel: SSHChannel
    private let activity: AgentActivity
    private let input: ChannelInputPump
    private let output: DescriptorOutputPump
    private let watches: DescriptorWatches
    private var clientSentEOF = false
    private var writeShutDown = false
    private(set) var isClosed = false

    /// Takes ownership of `socket` (connected, any mode; made non-blocking here).
    init(channel: SSHChannel, socket: Int32, activity: AgentActivity) {
        self.channel = channel
        self.activity = activity
        _ = fcntl(socket, F_SETFL, fcntl(socket, F_GETFL) | O_NONBLOCK)
        input = ChannelInputPump(descriptor: socket, channel: channel)
        output = DescriptorOutputPump(descriptor: socket, channel: channel, activity: activity)
        watches = DescriptorWatches(eventLoop: channel.eventLoop, owned: [socket])
        activity.channelOpened()
        updateWatches()
    }

    func channel(_ channel: SSHChannel, received bytes: UnsafeRawBufferPointer, isStderr: Bool) -> Int {
        activity.received(bytes.count)
        let taken = input.receive(bytes)
        updateWatches()
        return taken
    }

    func channelReceivedEOF(_ channel: SSHChannel) {
        clientSentEOF = true
        shutDownWriteIfDrained()
    }

    func channel(_ channel: SSHChannel, canWrite bytes: Int) {
        if output.resumeIfWindowOpen() { updateWatches() }
    }

    private func shutDownWriteIfDrained() {
        guard (clientSentEOF && input.isDrained) || !input.isOpen, !writeShutDown else { return }
        writeShutDown = true
        input.close()
        shutdown(input.descriptor, Int32(SHUT_WR))
    }

    private func handle(revents: Int16) {
        if revents & SSHEventLoop.writable != 0 {
            input.flush()
            shutDownWriteIfDrained()
        }
        if revents & (SSHEventLoop.readable | Int16(POLLHUP) | Int16(POLLERR)) != 0, output.isOpen,
           case .ended = output.pump()
        {
            channel.sendEOF()
        }
        updateWatches()
        closeIfDone()
    }

    private func updateWatches() {
        var events: Int16 = 0
        if output.wantsReadable { events |= SSHEventLoop.readable }
        if input.wantsWritable { events |= SSHEventLoop.writable }
        watches.update(events == 0 ? [:] : [input.descriptor: events]) { [unowned self] _, revents in
            self.handle(revents: revents)
        }
    }

    private func closeIfDone() {
        if !output.isOpen && writeShutDown { channel.close() }
    }

    func tick() {
        _ = output.resumeIfWindowOpen()
        input.pullHeld()
        shutDownWriteIfDrained()
        updateWatches()
        closeIfDone()
    }

    func channelClosed(_ channel: SSHChannel) {
        isClosed = true
        activity.channelClosed()
        input.close()
        output.close()
        watches.releaseAll()
    }
}

/// Channel handlers the connection drives between polls.
protocol ChannelTicking: AnyObject {
    func tick()
    var isClosed: Bool { get }
}

extension SessionChannelHandler: ChannelTicking {}

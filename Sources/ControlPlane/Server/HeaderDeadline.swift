import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore

/// A client gets `timeout` to send a request's headers, then is dropped: a slow-header
/// (slowloris) client cannot hold connections open by trickling bytes, neither on its first
/// request nor on a later one over a kept-alive connection. Idle connections are bounded by the
/// HTTP idle timeout; upgraded WebSockets by the gateway's own.
struct HeaderDeadlineChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner
    let timeout: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(HeaderDeadlineHandler(timeout: timeout), position: .first)
        }.flatMap { inner.setup(channel: channel, logger: logger) }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// Watches the bytes next to the socket. A request head must end (`\r\n\r\n`) within `timeout`
/// of the connection opening (first request) or of its first byte (later requests, which start
/// after a response head went out). Steps out of the pipeline once a `101 Switching Protocols`
/// goes out: what follows is WebSocket traffic.
final class HeaderDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private enum State {
        /// Waiting for a head; `started` once its first byte (or the connection) arrived.
        case awaitingHead(started: Bool)
        /// A head arrived: what follows is its body, until the response goes out.
        case inRequest
    }

    let timeout: TimeAmount
    private var state = State.awaitingHead(started: true)
    private var deadline: Scheduled<Void>?
    /// The last bytes seen, so a terminator split across reads is found.
    private var tail: [UInt8] = []

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        arm(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .awaitingHead(let started) = state {
            if !started {
                state = .awaitingHead(started: true)
                arm(context)
            }
            let bytes = tail + unwrapInboundIn(data).readableBytesView
            let terminator: [UInt8] = [13, 10, 13, 10]
            let found = bytes.count >= 4
                && (0...(bytes.count - 4)).contains { bytes[$0..<($0 + 4)].elementsEqual(terminator) }
            tail = found ? [] : Array(bytes.suffix(3))
            if found {
                state = .inRequest
                deadline?.cancel()
                deadline = nil
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .byteBuffer(let buffer) = unwrapOutboundIn(data),
           let start = buffer.getString(at: buffer.readerIndex, length: min(12, buffer.readableBytes)),
           start.hasPrefix("HTTP/1.") {
            if start.hasSuffix(" 101") {
                context.write(data, promise: promise)
                context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
                return
            }
            // A response head: the next bytes from the client are the next request.
            if case .inRequest = state, !start.hasSuffix(" 100") { state = .awaitingHead(started: false) }
        }
        context.write(data, promise: promise)
    }

    private func arm(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }
}

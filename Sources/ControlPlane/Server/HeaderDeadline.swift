import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1

/// Slow clients cannot hold connections: a request's head must arrive within `timeout` (of the
/// connection opening, or of the first byte of a later request on a kept-alive connection), and a
/// request body must keep coming at 1 KiB per `timeout` at least (a slowloris trickle on either is
/// dropped). Idle connections are bounded by the HTTP idle timeout; upgraded WebSockets by the
/// gateway's own.
///
/// Two handlers: ``HeaderDeadlineHandler`` next to the socket sees every byte come in and keeps the
/// timers; ``RequestPartObserver`` after the HTTP decoder sees the decoded parts (a head, the end of
/// a body, a response head going out), so nothing is inferred from bytes a body could forge.
struct HeaderDeadlineChannel<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner
    let timeout: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let deadline = HeaderDeadlineHandler(timeout: timeout)
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(deadline, position: .first)
        }.flatMap {
            inner.setup(channel: channel, logger: logger)
        }.flatMapThrowing { value in
            let operations = channel.pipeline.syncOperations
            let decoder = try operations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
            try operations.addHandler(RequestPartObserver(deadline: deadline), position: .after(decoder))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// The timers, by what the connection is doing.
final class HeaderDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum Phase {
        /// Waiting for a request head; `started` once its first byte (or the connection) arrived.
        case awaitingHead(started: Bool)
        /// A head arrived and its body is coming.
        case inBody
        /// The request is complete; its response has not started.
        case awaitingResponse
    }

    /// Below this many body bytes in one `timeout` window, a body counts as trickled.
    static let minimumBodyBytesPerWindow = 1024
    let timeout: TimeAmount
    private var phase = Phase.awaitingHead(started: true)
    private var timer: Scheduled<Void>?
    private var bytesThisWindow = 0
    private var context: ChannelHandlerContext?

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        armHeadDeadline()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytesThisWindow += unwrapInboundIn(data).readableBytes
        if case .awaitingHead(started: false) = phase {
            phase = .awaitingHead(started: true)
            armHeadDeadline()
        }
        context.fireChannelRead(data)
    }

    /// A request head was decoded; `bodyFollows` when it announces a body.
    func headReceived(bodyFollows: Bool) {
        timer?.cancel()
        timer = nil
        guard bodyFollows else {
            phase = .awaitingResponse
            return
        }
        phase = .inBody
        bytesThisWindow = 0
        armBodyWindow()
    }

    /// The request's body ended.
    func bodyEnded() {
        guard case .inBody = phase else { return }
        timer?.cancel()
        timer = nil
        phase = .awaitingResponse
    }

    /// A (final) response head went out: the next bytes from the client are the next request.
    func responseStarted() {
        guard case .awaitingResponse = phase else { return }
        phase = .awaitingHead(started: false)
    }

    /// The connection became something else (a WebSocket): no more HTTP deadlines.
    func stepOut() {
        guard let context else { return }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func armHeadDeadline() {
        timer?.cancel()
        guard let context else { return }
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    private func armBodyWindow() {
        timer?.cancel()
        guard let context else { return }
        let loop = context.eventLoop
        timer = loop.scheduleTask(in: timeout) { [weak self] in
            guard let self, let context = self.context, case .inBody = self.phase else { return }
            if self.bytesThisWindow < Self.minimumBodyBytesPerWindow {
                context.channel.close(promise: nil)
                return
            }
            self.bytesThisWindow = 0
            self.armBodyWindow()
        }
    }
}

/// Tells the deadline handler what the HTTP decoder decoded and what response heads go out.
final class RequestPartObserver: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart
    let deadline: HeaderDeadlineHandler
    /// After a 101: what passes is no longer HTTP, and is passed on untouched.
    private var upgraded = false

    init(deadline: HeaderDeadlineHandler) {
        self.deadline = deadline
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !upgraded else { return context.fireChannelRead(data) }
        switch unwrapInboundIn(data) {
        case .head(let head):
            let length = head.headers["content-length"].first.flatMap { Int($0) } ?? 0
            let chunked = head.headers["transfer-encoding"].contains { $0.lowercased().contains("chunked") }
            deadline.headReceived(bodyFollows: length > 0 || chunked)
        case .body:
            break
        case .end:
            deadline.bodyEnded()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !upgraded else { return context.write(data, promise: promise) }
        if case .head(let head) = unwrapOutboundIn(data) {
            if head.status == .switchingProtocols {
                upgraded = true
                deadline.stepOut()
            } else if head.status.code >= 200 {
                deadline.responseStarted()
            }
        }
        context.write(data, promise: promise)
    }
}

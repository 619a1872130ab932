import Crypto
import FlareClient
import FlareContracts
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// The CLI's WebSocket client for `/gateway/ssh`: NIO's upgrade and frame decoder, with frames
/// written and masked here a 64-bit word at a time, and stdio glued to the socket inside NIO.
///
/// A general WebSocket client masks one byte per loop iteration and moves every chunk through an
/// async task, which made `ssh-proxy` the slowest stage of an upload. Here both channels share one
/// event loop and hand bytes to each other directly, with backpressure by pausing reads.
struct GatewayConnection {
    /// Why the gateway did not upgrade (its JSON error is fetched separately for the message).
    struct Refused: Error {}

    /// How the gateway ended the connection.
    struct Close: Sendable {
        var code: WebSocketErrorCode
        var reason: String
    }

    let socket: any Channel
    fileprivate let frames: SocketSide

    fileprivate enum Upgrade: Sendable {
        case upgraded(any Channel, SocketSide)
        case refused
    }

    /// Connects to `url` (`ws://host:port/path?query`) with a bearer token.
    static func connect(url: String, token: String, maxFrameSize: Int = 1 << 20) async throws -> GatewayConnection {
        guard let components = URLComponents(string: url), components.scheme == "ws", let host = components.host else {
            throw CLIError("the gateway URL \(url) is not a ws:// URL (wss:// needs a TLS-terminating proxy)")
        }
        let port = components.port ?? 80
        let path = components.percentEncodedPath + (components.percentEncodedQuery.map { "?" + $0 } ?? "")
        let upgrade = try await ClientBootstrap(group: NIOSingletons.posixEventLoopGroup)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                minimum: 1024, initial: 16 * 1024, maximum: 512 * 1024))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = RawFrameUpgrader(maxFrameSize: maxFrameSize)
                    var headers = HTTPHeaders()
                    headers.add(name: "Host", value: "\(host):\(port)")
                    headers.add(name: "Authorization", value: "Bearer \(token)")
                    headers.add(name: "Content-Length", value: "0")
                    var configuration = NIOUpgradableHTTPClientPipelineConfiguration(
                        upgradeConfiguration: NIOTypedHTTPClientUpgradeConfiguration(
                            upgradeRequestHead: HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers),
                            upgraders: [upgrader],
                            notUpgradingCompletionHandler: { channel in
                                channel.close(promise: nil)
                                return channel.eventLoop.makeSucceededFuture(.refused)
                            }))
                    // The agent's banner can arrive in the same read as the 101 response.
                    configuration.leftOverBytesStrategy = .forwardBytes
                    return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: configuration)
                }
            }
        switch try await upgrade.get() {
        case .upgraded(let channel, let frames): return GatewayConnection(socket: channel, frames: frames)
        case .refused: throw Refused()
        }
    }

    /// Relays stdin to binary frames and binary frames to stdout until either side ends; returns
    /// the gateway's close frame, if it sent one.
    func relayStandardIO() async throws -> Close? {
        let socket = self.socket
        let frames = self.frames
        let pipe = try await NIOPipeBootstrap(group: socket.eventLoop)
            // Large reads mean few, large WebSocket frames: per-frame costs dominate bulk transfers.
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                minimum: 16 * 1024, initial: 64 * 1024, maximum: 512 * 1024))
            .channelInitializer { pipe in
                pipe.eventLoop.makeCompletedFuture {
                    try pipe.pipeline.syncOperations.addHandler(StandardIOSide(socket: socket))
                }
            }
            .takingOwnershipOfDescriptors(input: dup(0), output: dup(1)).get()
        try await socket.eventLoop.submit { frames.attach(pipe) }.get()
        try? await socket.closeFuture.get()
        try? await pipe.closeFuture.get()
        return try await socket.eventLoop.submit { frames.close }.get()
    }

    /// A masked client frame: header, then `payload` masked in place (RFC 6455 §5.2).
    static func frame(_ opcode: WebSocketOpcode, _ payload: inout ByteBuffer) -> [ByteBuffer] {
        var key = [UInt8](repeating: 0, count: 4)
        var generator = SystemRandomNumberGenerator()
        for index in 0..<4 { key[index] = UInt8.random(in: 0...255, using: &generator) }
        let length = payload.readableBytes
        var header = ByteBuffer()
        header.reserveCapacity(14)
        header.writeInteger(UInt8(0x80) | UInt8(webSocketOpcode: opcode))
        switch length {
        case ..<126: header.writeInteger(UInt8(0x80 | length))
        case ..<65536:
            header.writeInteger(UInt8(0x80 | 126))
            header.writeInteger(UInt16(length))
        default:
            header.writeInteger(UInt8(0x80 | 127))
            header.writeInteger(UInt64(length))
        }
        header.writeBytes(key)
        payload.withUnsafeMutableReadableBytes { WebSocketMasking.apply(key, to: $0) }
        return [header, payload]
    }
}

/// The WebSocket upgrade (RFC 6455 §4.1) leaving only NIO's frame decoder in the pipeline:
/// frames out are encoded by ``GatewayConnection/frame(_:_:)``.
private struct RawFrameUpgrader: NIOTypedHTTPClientProtocolUpgrader {
    typealias UpgradeResult = GatewayConnection.Upgrade
    let maxFrameSize: Int
    let key: String = {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
    }()

    var supportedProtocol: String { "websocket" }
    var requiredUpgradeHeaders: [String] { [] }

    func addCustom(upgradeRequestHeaders: inout HTTPHeaders) {
        upgradeRequestHeaders.add(name: "Sec-WebSocket-Key", value: key)
        upgradeRequestHeaders.add(name: "Sec-WebSocket-Version", value: "13")
    }

    func shouldAllowUpgrade(upgradeResponse: HTTPResponseHead) -> Bool {
        let accept = Data(Insecure.SHA1.hash(data: Data((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8)))
        return upgradeResponse.headers["Sec-WebSocket-Accept"] == [accept.base64EncodedString()]
    }

    func upgrade(channel: any Channel, upgradeResponse: HTTPResponseHead) -> EventLoopFuture<UpgradeResult> {
        channel.eventLoop.makeCompletedFuture {
            let frames = SocketSide()
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxFrameSize)))
            try channel.pipeline.syncOperations.addHandler(frames)
            return .upgraded(channel, frames)
        }
    }
}

/// On the socket: frames from the gateway to stdout; pings answered, the close frame kept.
/// Runs on the socket's event loop only.
final class SocketSide: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame

    private var pipe: (any Channel)?
    /// Data that arrived before stdout was ready (the agent's banner, right after the upgrade).
    private var pending: [ByteBuffer] = []
    private var lastWrite: EventLoopFuture<Void>?
    private(set) var close: GatewayConnection.Close?

    func attach(_ pipe: any Channel) {
        self.pipe = pipe
        for bytes in pending { lastWrite = pipe.write(bytes) }
        pending.removeAll()
        pipe.flush()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .continuation:
            if let pipe { lastWrite = pipe.write(frame.unmaskedData) } else { pending.append(frame.unmaskedData) }
        case .ping:
            var payload = frame.unmaskedData
            for part in GatewayConnection.frame(.pong, &payload) { context.channel.write(part, promise: nil) }
            context.channel.flush()
        case .connectionClose:
            // The first close frame says why; anything after it is the server finishing up.
            guard close == nil else { return }
            var data = frame.unmaskedData
            close = GatewayConnection.Close(code: data.readWebSocketErrorCode() ?? .normalClosure,
                                            reason: data.readString(length: data.readableBytes) ?? "")
            var reply = ByteBuffer()
            reply.write(webSocketErrorCode: .normalClosure)
            let channel = context.channel
            for part in GatewayConnection.frame(.connectionClose, &reply) { channel.write(part, promise: nil) }
            channel.writeAndFlush(ByteBuffer()).whenComplete { _ in channel.close(promise: nil) }
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard let pipe else { return }
        pipe.flush()
        // stdout is full: stop reading the socket until it drains (StandardIOSide resumes it).
        if !pipe.isWritable { try? context.channel.syncOptions?.setOption(.autoRead, value: false) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        try? pipe?.syncOptions?.setOption(.autoRead, value: context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        guard let pipe else { return }
        // Everything received reaches stdout before it closes.
        pipe.flush()
        (lastWrite ?? pipe.eventLoop.makeSucceededVoidFuture()).whenComplete { _ in pipe.close(promise: nil) }
    }
}

/// On stdin/stdout: stdin to masked binary frames on the socket.
private final class StandardIOSide: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let socket: any Channel

    init(socket: any Channel) {
        self.socket = socket
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        for part in GatewayConnection.frame(.binary, &bytes) { socket.write(part, promise: nil) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        socket.flush()
        // The socket is full: stop reading stdin until it drains (SocketSide resumes it).
        if !socket.isWritable { try? context.channel.syncOptions?.setOption(.autoRead, value: false) }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        try? socket.syncOptions?.setOption(.autoRead, value: context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // stdin ended (ssh is done): say goodbye, then hang up.
        var goodbye = ByteBuffer()
        goodbye.write(webSocketErrorCode: .normalClosure)
        let socket = self.socket
        for part in GatewayConnection.frame(.connectionClose, &goodbye) { socket.write(part, promise: nil) }
        socket.writeAndFlush(ByteBuffer()).whenComplete { _ in socket.close(promise: nil) }
    }
}

import Crypto
import FlareContracts
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket

/// The CLI's WebSocket client for `/gateway/ssh`: NIO's upgrade and frame decoder, with frames
/// written and masked here a 64-bit word at a time.
///
/// A general WebSocket client masks one byte per loop iteration on the proxy's one event-loop
/// thread, which made `ssh-proxy` the slowest stage of an upload. Frames from the gateway come
/// unmasked and go through NIO's decoder as usual.
struct GatewayConnection {
    /// Why the gateway did not upgrade (its JSON error is fetched separately for the message).
    struct Refused: Error {}

    /// How the gateway ended the connection.
    struct Close: Sendable {
        var code: WebSocketErrorCode
        var reason: String
    }

    let channel: NIOAsyncChannel<WebSocketFrame, ByteBuffer>

    fileprivate enum Upgrade: Sendable {
        case upgraded(NIOAsyncChannel<WebSocketFrame, ByteBuffer>)
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
        case .upgraded(let channel): return GatewayConnection(channel: channel)
        case .refused: throw Refused()
        }
    }

    /// Relays `input` to binary frames and binary frames to `output` until either side ends;
    /// returns the gateway's close frame, if it sent one.
    func relay(input: NIOAsyncChannelInboundStream<ByteBuffer>, output: NIOAsyncChannelOutboundWriter<ByteBuffer>)
        async throws -> Close?
    {
        try await channel.executeThenClose { frames, writer in
            try await withThrowingTaskGroup(of: Close?.self) { group in
                group.addTask {
                    for try await var bytes in input {
                        try await writer.write(contentsOf: Self.frame(.binary, &bytes))
                    }
                    return nil
                }
                group.addTask {
                    for try await frame in frames {
                        switch frame.opcode {
                        case .binary, .continuation:
                            try await output.write(frame.unmaskedData)
                        case .ping:
                            var payload = frame.unmaskedData
                            try await writer.write(contentsOf: Self.frame(.pong, &payload))
                        case .connectionClose:
                            var data = frame.unmaskedData
                            let code = data.readWebSocketErrorCode() ?? .normalClosure
                            let reason = data.readString(length: data.readableBytes) ?? ""
                            var reply = ByteBuffer()
                            reply.write(webSocketErrorCode: .normalClosure)
                            try? await writer.write(contentsOf: Self.frame(.connectionClose, &reply))
                            return Close(code: code, reason: reason)
                        default:
                            continue
                        }
                    }
                    return nil
                }
                let first = try await group.next() ?? nil
                group.cancelAll()
                return first
            }
        }
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
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: maxFrameSize)))
            return .upgraded(try NIOAsyncChannel(wrappingChannelSynchronously: channel))
        }
    }
}

import FlareContracts
import NIOCore
import NIOWebSocket
import WSCore

/// Unmasks client frames eight bytes at a time before the WebSocket library sees them.
///
/// swift-nio unmasks one byte per loop iteration, which was a tenth of all CPU time of an upload
/// through the gateway. Applied without negotiation (it changes nothing on the wire): a frame comes
/// out with its mask removed and no masking key, so the library takes its data as it is.
struct FastUnmaskExtension: WebSocketExtension {
    var name: String { "flare-fast-unmask" }

    func processReceivedFrame(_ frame: WebSocketFrame, context: WebSocketExtensionContext) async throws
        -> WebSocketFrame
    {
        guard let key = frame.maskKey else { return frame }
        var frame = frame
        frame.maskKey = nil
        frame.data.withUnsafeMutableReadableBytes { WebSocketMasking.apply([key[0], key[1], key[2], key[3]], to: $0) }
        return frame
    }

    func processFrameToSend(_ frame: WebSocketFrame, context: WebSocketExtensionContext) async throws
        -> WebSocketFrame
    {
        frame
    }

    func shutdown() async {}
}

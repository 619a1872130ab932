import FlareContracts
import NIOCore
import NIOWebSocket
import Testing

struct WebSocketMaskingTests {
    @Test(arguments: [0, 1, 3, 7, 8, 9, 15, 16, 17, 1000, 65_537])
    func wordAtATimeMaskingMatchesNIOsByteLoop(length: Int) {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let key = WebSocketMaskingKey.random()
        var expected = ByteBuffer(bytes: bytes)
        expected.webSocketMask(key)
        var fast = bytes
        fast.withUnsafeMutableBytes { WebSocketMasking.apply(Array(key), to: $0) }
        #expect(fast == Array(buffer: expected))
        if length > 0 { #expect(fast != bytes || key == [0, 0, 0, 0]) }
    }
}

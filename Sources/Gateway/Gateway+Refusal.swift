import FlareContracts
import FlareHTTP
import Foundation
import Hummingbird
import NIOCore
import NIOHTTP1

extension Gateway {
    /// Runs `authorize`; when a real WebSocket handshake is refused, answers it with the refusal's
    /// status and JSON error body before rethrowing.
    ///
    /// Hummingbird answers a refused upgrade with a bare `400` and no body (the request never
    /// reaches the HTTP router), so a browser or the CLI could not tell an expired token from a
    /// deleted session. The response is written below the HTTP encoder, straight to the socket,
    /// and the connection closed; the library's own `400` then finds it closed.
    func refusingReadably<T>(_ request: Request, channel: any Channel, id: String,
                             _ authorize: () async throws -> T) async throws -> T {
        do {
            return try await authorize()
        } catch {
            guard request.headers[.upgrade]?.lowercased() == "websocket" else { throw error }
            let refusal = APIError.reported(error)
                ?? APIError(.internalServerError, code: "internal", "internal server error")
            let body = (try? FlareJSON.encoder().encode(ErrorBody(code: refusal.code, message: refusal.message,
                                                                 requestId: id))) ?? Data()
            var head = "HTTP/1.1 \(refusal.status.code) \(refusal.status.reasonPhrase)\r\n"
            head += "Content-Type: application/json; charset=utf-8\r\nContent-Length: \(body.count)\r\n"
            for field in refusal.headers { head += "\(field.name.rawName): \(field.value)\r\n" }
            head += "x-request-id: \(id)\r\nConnection: close\r\n\r\n"
            var buffer = ByteBufferAllocator().buffer(capacity: head.utf8.count + body.count)
            buffer.writeString(head)
            buffer.writeBytes(body)
            let response = buffer
            try? await channel.eventLoop.submit {
                let encoder = try channel.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
                encoder.writeAndFlush(NIOAny(response)).whenComplete { _ in channel.close(promise: nil) }
            }.get()
            throw error
        }
    }
}

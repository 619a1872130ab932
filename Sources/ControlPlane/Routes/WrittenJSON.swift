import FlareContracts
import Hummingbird
import NIOCore

/// A JSON response body written by ``JSONWriter``: the same bytes `JSONEncoder` would give, for
/// the routes that answer with many values (a list of sessions).
struct WrittenJSON: ResponseGenerator {
    let bytes: [UInt8]

    init(_ value: some JSONWritable) {
        bytes = JSONWriter.encode(value)
    }

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = HTTPFields()
        headers.reserveCapacity(4)
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.contentLength] = String(bytes.count)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

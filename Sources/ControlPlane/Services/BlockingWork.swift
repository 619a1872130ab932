import Crypto
import Foundation
import NIOCore
import NIOPosix

/// Runs blocking work (file writes, fsync, hashing a whole file, directory walks) on NIO's
/// blocking-I/O pool, never on Swift's cooperative pool, which has one thread per core: a route
/// that blocks there stalls every other request and task of the process.
func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await NIOThreadPool.singleton.runIfActive(work)
}

/// A request body being written to a new file (mode 0600), optionally hashed as it goes, with
/// every write on the blocking pool. Used by one task at a time.
final class UploadFile: @unchecked Sendable {
    let url: URL
    private let handle: FileHandle
    private var hasher: SHA256?
    private(set) var size: Int64 = 0

    /// Creates the file, or throws (500: the server cannot keep uploads).
    init(_ url: URL, hashing: Bool) throws {
        self.url = url
        guard FileManager.default.createFile(atPath: url.path, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = try? FileHandle(forWritingTo: url)
        else { throw UploadFileError(description: "cannot create the upload file \(url.path)") }
        self.handle = handle
        hasher = hashing ? SHA256() : nil
    }

    deinit { try? handle.close() }

    /// Streams `body` in; `check` sees the running size before each write and throws to refuse
    /// the upload (too large, over a quota). The file is synced before this returns.
    func receive<Body: AsyncSequence>(_ body: Body, check: (Int64) throws -> Void) async throws
        where Body.Element == ByteBuffer
    {
        for try await buffer in body {
            try check(size + Int64(buffer.readableBytes))
            size += Int64(buffer.readableBytes)
            try await blocking { [self] in
                try buffer.withUnsafeReadableBytes { bytes in
                    hasher?.update(bufferPointer: bytes)
                    try handle.write(contentsOf: bytes)
                }
            }
        }
        try await blocking { [self] in try handle.synchronize() }
    }

    /// The lowercase hex SHA-256 of what was received (when hashing).
    var digest: String? { hasher.map { FileBlobStore.hex($0.finalize()) } }
}

/// The server could not keep an upload (a 500: nothing of it is kept).
struct UploadFileError: Error, CustomStringConvertible {
    let description: String
}

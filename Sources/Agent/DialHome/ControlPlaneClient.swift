import AsyncHTTPClient
import Crypto
import FlareClient
import FlareContracts
import Foundation
import NIOCore
import NIOFoundationCompat

/// The agent's side of the dial-home API, authenticated with its per-session agent token: the
/// ``Endpoints/Agent`` calls through one ``FlareClient`` on its own HTTP client.
public final class ControlPlaneClient: Sendable {
    let client: FlareClient
    let http: HTTPClient

    /// A snapshot that could not be written or arrived damaged.
    public struct TransferError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(baseURL: String, token: String) {
        // The control plane is a local socket: a connect that does not succeed at once will not (the
        // default 10 s of retried connects held a stopping agent with its server gone).
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .seconds(2)
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        client = FlareClient(baseURL: baseURL, token: token, http: http, timeout: .seconds(15))
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    public func register(_ body: AgentRegisterRequest) async throws {
        try await client.call(Endpoints.Agent.register, body)
    }

    public func config() async throws -> AgentConfig {
        try await client.call(Endpoints.Agent.config)
    }

    public func ready(_ activity: AgentHeartbeat) async throws {
        try await client.call(Endpoints.Agent.ready, activity)
    }

    /// Waits (long poll, about 25 s) for the next command; nil when there was none.
    public func nextCommand() async throws -> AgentCommand? {
        try await client.call(Endpoints.Agent.nextCommand, timeout: .seconds(40))
    }

    public func reportResult(_ result: AgentCommandResult, of command: AgentCommand) async throws {
        try await client.call(Endpoints.Agent.commandResult.at(command.id), result)
    }

    /// Tells the control plane this agent cannot serve its session, and why.
    public func reportFailure(_ reason: String) async throws {
        try await client.call(Endpoints.Agent.failed, AgentFailure(reason: reason))
    }

    public func heartbeat(_ activity: AgentHeartbeat) async throws {
        try await client.call(Endpoints.Agent.heartbeat, activity)
    }

    /// Uploads a snapshot archive as a stream; the server stores it only if its digest matches.
    public func uploadSnapshot(file: String, sha256: String, entryCount: Int, totalBytes: UInt64, reason: String)
        async throws -> SnapshotInfo
    {
        let size = (try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        // Bounded even when the control plane stops reading: a stopping agent must still exit.
        return try await client.upload(
            Endpoints.Agent.uploadSnapshot, .stream(FileChunks(path: file), length: .known(Int64(size))),
            contentType: "application/zstd",
            headers: [("X-Flare-Sha256", sha256), ("X-Flare-Entry-Count", String(entryCount)),
                      ("X-Flare-Total-Bytes", String(totalBytes)), ("X-Flare-Reason", reason)],
            timeout: .seconds(30 + Int64(size / (5 << 20))))
    }

    /// Downloads a snapshot to `file`, checking it against `reference.sha256` as it arrives.
    public func downloadSnapshot(_ reference: SnapshotReference, to file: String) async throws {
        let response = try await client.open(Endpoints.Agent.snapshotContent.at(reference.id), timeout: .seconds(3600))
        guard FileManager.default.createFile(atPath: file, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: file)
        else { throw TransferError(description: "cannot write \(file)") }
        defer { try? handle.close() }
        var hasher = SHA256()
        for try await buffer in response.body {
            let data = Data(buffer: buffer)
            hasher.update(data: data)
            try handle.write(contentsOf: data)
        }
        let digest = hasher.finalize().hex
        guard digest == reference.sha256 else {
            throw TransferError(description: "snapshot \(reference.id) arrived damaged (sha256 mismatch)")
        }
    }
}

/// A file as a stream of 1 MiB buffers, for streaming uploads.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let path: String

    struct AsyncIterator: AsyncIteratorProtocol {
        let handle: FileHandle?

        mutating func next() async throws -> ByteBuffer? {
            guard let handle, let data = try handle.read(upToCount: 1 << 20), !data.isEmpty else {
                try? handle?.close()
                return nil
            }
            return ByteBuffer(data: data)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(handle: FileHandle(forReadingAtPath: path)) }
}

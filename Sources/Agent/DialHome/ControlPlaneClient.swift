import AsyncHTTPClient
import Crypto
import FlareContracts
import Foundation
import NIOCore
import NIOFoundationCompat

/// The agent's side of the dial-home API, authenticated with its per-session agent token.
public final class ControlPlaneClient: Sendable {
    let baseURL: String
    let token: String
    let client: HTTPClient

    public struct RequestError: Error, CustomStringConvertible {
        public let description: String
        /// The control plane's HTTP status, when it answered.
        public var status: Int?

        init(description: String, status: Int? = nil) {
            self.description = description
            self.status = status
        }
    }

    public init(baseURL: String, token: String) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.token = token
        // The control plane is a local socket: a connect that does not succeed at once will not (the
        // default 10 s of retried connects held a stopping agent with its server gone).
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .seconds(2)
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func shutdown() async {
        try? await client.shutdown()
    }

    public func register(_ body: AgentRegisterRequest) async throws {
        _ = try await send("POST", "/agent/v1/register", body: body)
    }

    public func config() async throws -> AgentConfig {
        let data = try await send("GET", "/agent/v1/config", body: Optional<AgentHeartbeat>.none)
        return try FlareJSON.decoder().decode(AgentConfig.self, from: data)
    }

    public func ready(_ activity: AgentHeartbeat) async throws {
        _ = try await send("POST", "/agent/v1/ready", body: activity)
    }

    /// Waits (long poll, about 25 s) for the next command; nil when there was none.
    public func nextCommand() async throws -> AgentCommand? {
        var request = HTTPClientRequest(url: baseURL + "/agent/v1/commands")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await client.execute(request, timeout: .seconds(40))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        guard response.status.code == 200 else {
            if response.status.code == 204 { return nil }
            throw RequestError(description: "GET /agent/v1/commands: \(response.status.code)")
        }
        return try FlareJSON.decoder().decode(AgentCommand.self, from: Data(buffer: bytes))
    }

    public func reportResult(_ result: AgentCommandResult, of command: AgentCommand) async throws {
        _ = try await send("POST", "/agent/v1/commands/\(command.id)/result", body: result)
    }

    /// Tells the control plane this agent cannot serve its session, and why.
    public func reportFailure(_ reason: String) async throws {
        _ = try await send("POST", "/agent/v1/failed", body: AgentFailure(reason: reason))
    }

    public func heartbeat(_ activity: AgentHeartbeat) async throws {
        _ = try await send("POST", "/agent/v1/heartbeat", body: activity)
    }

    /// Uploads a snapshot archive as a stream; the server stores it only if its digest matches.
    public func uploadSnapshot(file: String, sha256: String, entryCount: Int, totalBytes: UInt64, reason: String)
        async throws -> SnapshotInfo
    {
        let size = (try FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        var request = HTTPClientRequest(url: baseURL + "/agent/v1/snapshots")
        request.method = .PUT
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/zstd")
        request.headers.add(name: "X-Flare-Sha256", value: sha256)
        request.headers.add(name: "X-Flare-Entry-Count", value: String(entryCount))
        request.headers.add(name: "X-Flare-Total-Bytes", value: String(totalBytes))
        request.headers.add(name: "X-Flare-Reason", value: reason)
        request.body = .stream(FileChunks(path: file), length: .known(Int64(size)))
        // Bounded even when the control plane stops reading: a stopping agent must still exit.
        let response = try await client.execute(request, timeout: .seconds(30 + Int64(size / (5 << 20))))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        guard response.status.code == 201 else {
            let message = (try? FlareJSON.decoder().decode(ErrorBody.self, from: Data(buffer: bytes)))?.error.message
            throw RequestError(description: "snapshot upload: \(response.status.code) \(message ?? "")",
                               status: Int(response.status.code))
        }
        return try FlareJSON.decoder().decode(SnapshotInfo.self, from: Data(buffer: bytes))
    }

    /// Downloads a snapshot to `file`, checking it against `reference.sha256` as it arrives.
    public func downloadSnapshot(_ reference: SnapshotReference, to file: String) async throws {
        var request = HTTPClientRequest(url: baseURL + "/agent/v1/snapshots/\(reference.id)/content")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await client.execute(request, timeout: .seconds(3600))
        guard response.status.code == 200 else {
            let bytes = try await response.body.collect(upTo: 1 << 20)
            let message = (try? FlareJSON.decoder().decode(ErrorBody.self, from: Data(buffer: bytes)))?.error.message
            throw RequestError(description: "snapshot download: \(response.status.code) \(message ?? "")")
        }
        guard FileManager.default.createFile(atPath: file, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: file)
        else { throw RequestError(description: "cannot write \(file)") }
        defer { try? handle.close() }
        var hasher = SHA256()
        for try await buffer in response.body {
            let data = Data(buffer: buffer)
            hasher.update(data: data)
            try handle.write(contentsOf: data)
        }
        let digest = hasher.finalize().hex
        guard digest == reference.sha256 else {
            throw RequestError(description: "snapshot \(reference.id) arrived damaged (sha256 mismatch)")
        }
    }

    private func send(_ method: String, _ path: String, body: (some Encodable)?) async throws -> Data {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .RAW(value: method)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try FlareJSON.encoder().encode(body)))
        }
        let response = try await client.execute(request, timeout: .seconds(15))
        let bytes = try await response.body.collect(upTo: 4 << 20)
        guard (200..<300).contains(response.status.code) else {
            let message = (try? FlareJSON.decoder().decode(ErrorBody.self, from: Data(buffer: bytes)))?.error.message
            throw RequestError(description: "\(method) \(path): \(response.status.code) \(message ?? "")",
                               status: Int(response.status.code))
        }
        return Data(buffer: bytes)
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

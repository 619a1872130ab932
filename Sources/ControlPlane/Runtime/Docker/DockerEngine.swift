import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// The few Docker Engine API calls the docker runtime needs, over the engine's Unix socket (HTTP,
/// no `docker` CLI).
struct DockerEngine: Sendable {
    /// `http+unix://…` for the socket, with the API version the calls are written against.
    let baseURL: String
    let client: HTTPClient

    init(socketPath: String = "/var/run/docker.sock", client: HTTPClient = .shared) {
        let encoded = socketPath.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? socketPath
        baseURL = "http+unix://\(encoded)/v1.41"
        self.client = client
    }

    struct ContainerConfig: Encodable {
        var Image: String
        var Cmd: [String]
        var Env: [String]
        var Labels: [String: String]
        var User: String?
        var WorkingDir: String?
        var HostConfig: HostConfig
    }

    struct HostConfig: Encodable {
        var Binds: [String]
        var NetworkMode: String
        var Memory: Int64?
        /// Equal to `Memory`: no swap on top of the limit.
        var MemorySwap: Int64?
        var NanoCpus: Int64?
        var PidsLimit: Int64?
        var CapDrop: [String]? = nil
        var CapAdd: [String]? = nil
        var SecurityOpt: [String]? = nil
        var Mounts: [Mount]? = nil
    }

    /// A mount beside the binds; here, fresh anonymous volumes (removed with the container).
    struct Mount: Encodable {
        var `Type` = "volume"
        var Target: String
        /// Nothing from the image at `Target` is copied in: the volume starts empty.
        var VolumeOptions = Options(NoCopy: true)

        struct Options: Encodable {
            var NoCopy: Bool
        }
    }

    struct ContainerState: Decodable {
        var Status: String
        var Running: Bool
        var Pid: Int32
        var ExitCode: Int32
        var OOMKilled: Bool
        var Error: String?
    }

    struct ContainerInspect: Decodable {
        var Id: String
        var State: ContainerState
        var Config: InspectConfig

        struct InspectConfig: Decodable {
            var Labels: [String: String]?
        }
    }

    /// Creates a container named `name`; returns its id.
    func create(name: String, _ config: ContainerConfig) async throws -> String {
        struct Created: Decodable { var Id: String }
        let data = try await send(.POST, "/containers/create?name=\(name)", body: try JSONEncoder().encode(config))
        return try JSONDecoder().decode(Created.self, from: data).Id
    }

    func start(_ container: String) async throws {
        _ = try await send(.POST, "/containers/\(container)/start", accepting: [204, 304])
    }

    /// SIGTERM, then SIGKILL after `seconds` (the engine's own stop).
    func stop(_ container: String, seconds: Int) async throws {
        _ = try await send(.POST, "/containers/\(container)/stop?t=\(seconds)", accepting: [204, 304],
                           timeout: .seconds(Int64(seconds) + 30))
    }

    func kill(_ container: String) async throws {
        _ = try await send(.POST, "/containers/\(container)/kill", accepting: [204, 409])
    }

    func remove(_ container: String) async throws {
        _ = try await send(.DELETE, "/containers/\(container)?force=true&v=true", accepting: [204, 404])
    }

    /// Nil when there is no such container.
    func inspect(_ container: String) async throws -> ContainerInspect? {
        do {
            return try JSONDecoder().decode(ContainerInspect.self, from: try await send(.GET, "/containers/\(container)/json"))
        } catch let error as DockerEngineError where error.status == 404 {
            return nil
        }
    }

    /// The container's output (stdout and stderr), the last `tail` lines, as text.
    func logs(_ container: String, tail: Int = 200) async throws -> String {
        var data = try await send(.GET, "/containers/\(container)/logs?stdout=true&stderr=true&tail=\(tail)")
        // Without a TTY the stream is multiplexed: 8-byte headers (stream, 0, 0, 0, size32) per chunk.
        var text = Data()
        while data.count >= 8 {
            let size = data.dropFirst(4).prefix(4).reduce(0) { $0 << 8 | Int($1) }
            text.append(data.dropFirst(8).prefix(size))
            data = Data(data.dropFirst(8 + size))
        }
        return String(decoding: text, as: UTF8.self)
    }

    struct ImageInspect: Decodable {
        var Id: String
        var Config: ImageConfig

        struct ImageConfig: Decodable {
            var User: String?
            var Labels: [String: String]?
        }
    }

    /// Nil when there is no such image (nothing is ever pulled).
    func image(_ name: String) async throws -> ImageInspect? {
        do {
            return try JSONDecoder().decode(ImageInspect.self, from: try await send(.GET, "/images/\(name)/json"))
        } catch let error as DockerEngineError where error.status == 404 {
            return nil
        }
    }

    /// Builds `context` (an uncompressed tar with a Dockerfile) as `tag` in `network` (`host` only
    /// for the validated package installs), streaming the build's output to `log`; returns the
    /// image id.
    func build(tag: String, network: String, labels: [String: String] = [:], context: Data,
               log: @Sendable (String) -> Void) async throws -> String
    {
        let labelJSON = String(decoding: try JSONEncoder().encode(labels), as: UTF8.self)
        let query = "t=\(tag.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? tag)&networkmode=\(network)&rm=1"
            + "&forcerm=1&pull=0&labels=\(labelJSON.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
        var request = HTTPClientRequest(url: baseURL + "/build?" + query)
        request.method = .POST
        request.headers.add(name: "Host", value: "docker")
        request.headers.add(name: "Content-Type", value: "application/x-tar")
        request.body = .bytes(ByteBuffer(data: context))
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .minutes(30))
        } catch {
            throw DockerEngineError(status: 0, message: "the Docker engine is not reachable (\(error))")
        }
        struct Line: Decodable {
            var stream: String?
            var error: String?
            var aux: Aux?
            struct Aux: Decodable { var ID: String? }
        }
        var pending = Data()
        var imageId: String?
        var failure: String?
        for try await chunk in response.body {
            pending.append(contentsOf: chunk.readableBytesView)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = pending[pending.startIndex..<newline]
                pending = Data(pending[pending.index(after: newline)...])
                guard let decoded = try? JSONDecoder().decode(Line.self, from: line) else { continue }
                if let text = decoded.stream { log(text) }
                if let error = decoded.error {
                    log(error + "\n")
                    failure = error
                }
                if let id = decoded.aux?.ID { imageId = id }
            }
        }
        guard response.status == .ok, failure == nil, let imageId else {
            throw DockerEngineError(status: 0, message: "the build failed: \(failure ?? "it produced no image (HTTP \(response.status.code))")")
        }
        return imageId
    }

    /// Unpacks a tar file into the container's filesystem at `/` (streamed from disk).
    func putArchive(_ container: String, tar: URL) async throws {
        let size = (try FileManager.default.attributesOfItem(atPath: tar.path)[.size] as? Int) ?? 0
        var request = HTTPClientRequest(url: baseURL + "/containers/\(container)/archive?path=%2F")
        request.method = .PUT
        request.headers.add(name: "Host", value: "docker")
        request.headers.add(name: "Content-Type", value: "application/x-tar")
        request.body = .stream(FileByteChunks(path: tar.path), length: .known(Int64(size)))
        let response = try await client.execute(request, timeout: .minutes(10))
        let data = Data(buffer: try await response.body.collect(upTo: 1 << 20))
        guard response.status == .ok else {
            throw DockerEngineError(status: response.status.code, message: String(decoding: data.prefix(300), as: UTF8.self))
        }
    }

    /// Follows the container's output (stdout and stderr together) until it ends, handing each
    /// chunk to `output`.
    func followLogs(_ container: String, output: @Sendable (Data) -> Void) async throws {
        var request = HTTPClientRequest(url: baseURL + "/containers/\(container)/logs?stdout=true&stderr=true&follow=true")
        request.headers.add(name: "Host", value: "docker")
        let response = try await client.execute(request, timeout: .hours(24))
        var pending = Data()
        for try await chunk in response.body {
            pending.append(contentsOf: chunk.readableBytesView)
            // Multiplexed: an 8-byte header (stream, 0, 0, 0, size32) before each frame.
            while pending.count >= 8 {
                let size = pending.dropFirst(4).prefix(4).reduce(0) { $0 << 8 | Int($1) }
                guard pending.count >= 8 + size else { break }
                output(Data(pending.dropFirst(8).prefix(size)))
                pending = Data(pending.dropFirst(8 + size))
            }
        }
    }

    /// Waits for the container to exit; its exit status.
    func wait(_ container: String) async throws -> Int {
        struct Exit: Decodable { var StatusCode: Int }
        let data = try await send(.POST, "/containers/\(container)/wait", accepting: [200], timeout: .hours(24))
        return try JSONDecoder().decode(Exit.self, from: data).StatusCode
    }

    /// Makes an image of the container as `repository:tag`, with Dockerfile-style `changes`.
    func commit(_ container: String, repository: String, tag: String, changes: [String],
                labels: [String: String]) async throws -> String {
        struct Committed: Decodable { var Id: String }
        struct Config: Encodable { var Labels: [String: String] }
        var query = "container=\(container)&repo=\(repository.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
            + "&tag=\(tag.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
        for change in changes {
            query += "&changes=\(change.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")"
        }
        let data = try await send(.POST, "/commit?" + query, body: try JSONEncoder().encode(Config(Labels: labels)))
        return try JSONDecoder().decode(Committed.self, from: data).Id
    }

    func removeImage(_ name: String) async throws {
        _ = try await send(.DELETE, "/images/\(name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? name)",
                           accepting: [200, 404, 409])
    }

    func ping() async throws {
        _ = try await send(.GET, "/_ping")
    }

    private func send(_ method: HTTPMethod, _ path: String, body: Data? = nil, accepting: Set<UInt> = [200, 201, 204],
                      timeout: TimeAmount = .seconds(60)) async throws -> Data {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        // The engine wants a Host header, which a request over a Unix socket does not get by itself.
        request.headers.add(name: "Host", value: "docker")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout)
        } catch {
            throw DockerEngineError(status: 0, message: "the Docker engine is not reachable (\(error)); is dockerd running? "
                + "Scripts/docker-setup.sh starts one")
        }
        let data = Data(buffer: try await response.body.collect(upTo: 16 << 20))
        guard accepting.contains(response.status.code) else {
            struct Message: Decodable { var message: String }
            let message = (try? JSONDecoder().decode(Message.self, from: data))?.message
                ?? String(decoding: data.prefix(300), as: UTF8.self)
            throw DockerEngineError(status: response.status.code, message: message)
        }
        return data
    }
}

/// A file as a stream of chunks, for request bodies that must not be read whole into memory.
struct FileByteChunks: AsyncSequence, Sendable {
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

struct DockerEngineError: Error, CustomStringConvertible {
    let status: UInt
    let message: String
    var description: String { status == 0 ? message : "Docker engine: \(message) (HTTP \(status))" }
}

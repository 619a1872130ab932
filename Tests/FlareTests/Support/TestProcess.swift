import FlareSystem
import Foundation

/// What a finished command printed and how it ended.
struct CommandResult: Sendable {
    let status: Int32
    let stdoutData: Data
    var stdout: String { String(decoding: stdoutData, as: UTF8.self) }
    let stderr: String
    let timedOut: Bool
}

/// Runs real programs (ssh, the flare binaries) from tests, always within a time limit.
enum TestProcess {
    /// The package's root directory.
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Where the built executables are (override with FLARE_BIN_DIR).
    static var binDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["FLARE_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        return packageRoot.appendingPathComponent(".build/debug")
    }

    static func binary(_ name: String) -> String { binDirectory.appendingPathComponent(name).path }

    /// Runs `arguments` (argv[0] looked up in PATH) and waits at most `timeout` seconds, killing it
    /// after. The wait is on a dispatch thread, not the test's: tests run in parallel, and a blocked
    /// cooperative thread would starve every in-process server and client of the run.
    static func run(
        _ arguments: [String], environment: [String: String] = [:], stdin: Data? = nil, timeout: TimeInterval = 60
    ) async throws -> CommandResult {
        try await offThePool { try runBlocking(arguments, environment: environment, stdin: stdin, timeout: timeout) }
    }

    /// ``run(_:environment:stdin:timeout:)`` on the caller's thread, for a `deinit`'s cleanup.
    static func runBlocking(
        _ arguments: [String], environment: [String: String] = [:], stdin: Data? = nil, timeout: TimeInterval = 60
    ) throws -> CommandResult {
        let out = try TemporaryFile(), err = try TemporaryFile()
        var input: [Int32] = [-1, -1]
        if stdin != nil {
            guard pipe(&input) == 0 else { throw FixtureError("pipe failed") }
            input.forEach { _ = fcntl($0, F_SETFD, FD_CLOEXEC) }
        }
        let child = try SpawnedProcess(arguments, environment: environment, stdin: stdin == nil ? nil : input[0],
                                       stdout: out.handle.fileDescriptor, stderr: err.handle.fileDescriptor)
        if let stdin {
            close(input[0])
            let writeEnd = input[1]
            DispatchQueue.global().async {
                stdin.withUnsafeBytes { raw in
                    var offset = 0
                    while offset < raw.count {
                        let n = write(writeEnd, raw.baseAddress! + offset, raw.count - offset)
                        if n <= 0 { break }
                        offset += n
                    }
                }
                close(writeEnd)
            }
        }
        var status = child.wait(timeout: timeout)
        let timedOut = status == nil
        if timedOut {
            child.signal(SIGKILL)
            status = child.wait(timeout: 5)
        }
        return CommandResult(status: status ?? -1, stdoutData: out.data(), stderr: err.contents(), timedOut: timedOut)
    }
}

/// A file in the temp directory that captures a child's output (pipes could fill and block it).
final class TemporaryFile {
    let url: URL
    let handle: FileHandle

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("flare-test-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: url.path, contents: nil)
        handle = try FileHandle(forWritingTo: url)
    }

    func data() -> Data {
        (try? Data(contentsOf: url)) ?? Data()
    }

    func contents() -> String {
        (try? String(contentsOf: url, encoding: .utf8)) ?? ""
    }

    deinit {
        try? handle.close()
        try? FileManager.default.removeItem(at: url)
    }
}

/// A server or agent started for a test; stopped (SIGTERM, then SIGKILL) when the test ends,
/// whether it passed or not.
final class BackgroundProcess: @unchecked Sendable {
    let child: SpawnedProcess
    let log: TemporaryFile

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        log = try TemporaryFile()
        child = try SpawnedProcess(arguments, environment: environment, stdin: nil,
                                   stdout: log.handle.fileDescriptor, stderr: log.handle.fileDescriptor)
    }

    var output: String { log.contents() }
    var pid: pid_t { child.pid }
    var isRunning: Bool { child.isRunning }

    func stop() {
        guard child.isRunning else { return }
        child.signal(SIGTERM)
        if child.wait(timeout: 15) == nil {
            child.signal(SIGKILL)
            _ = child.wait(timeout: 5)
        }
    }

    /// Ends it at once, as a crash would.
    func crash() {
        child.signal(SIGKILL)
        _ = child.wait(timeout: 5)
    }

    deinit { stop() }
}

/// A temporary directory removed when the value goes away.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        // Short paths: Unix socket paths are limited to 108 bytes.
        url = URL(fileURLWithPath: "/tmp/flt-\(UUID().uuidString.prefix(8))")
        // 0700, as mktemp makes them and as a home directory often is: nothing the server starts
        // may depend on other uids reaching into it.
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes (sleeping, not blocking).
func waitFor(timeout: TimeInterval = 20, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}

/// Runs blocking work (waiting for a child, a slow syscall) on a dispatch thread.
func offThePool<Value: Sendable>(_ work: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Swift.Result(catching: work)) }
    }
}

extension SpawnedProcess {
    /// ``wait(timeout:)`` on a dispatch thread: the exit status, or nil if it still runs after `timeout`.
    func exited(timeout: TimeInterval) async -> Int32? {
        (try? await offThePool { self.wait(timeout: timeout) }) ?? nil
    }
}

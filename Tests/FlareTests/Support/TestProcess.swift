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

    /// Runs `arguments` (argv[0] looked up in PATH) and waits at most `timeout` seconds, killing it after.
    static func run(
        _ arguments: [String], environment: [String: String] = [:], stdin: Data? = nil,
        currentDirectory: URL? = nil, timeout: TimeInterval = 60
    ) throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { _, new in new }
        process.environment = env
        if let currentDirectory { process.currentDirectoryURL = currentDirectory }
        let out = try TemporaryFile(), err = try TemporaryFile()
        process.standardOutput = out.handle
        process.standardError = err.handle
        let input = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice : input
        try process.run()
        if let stdin {
            let writer = input.fileHandleForWriting
            DispatchQueue.global().async {
                writer.write(stdin)
                try? writer.close()
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        let timedOut = process.isRunning
        if timedOut {
            process.terminate()
            usleep(200_000)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, stdoutData: out.data(), stderr: err.contents(),
                             timedOut: timedOut)
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
    let process = Process()
    let log: TemporaryFile

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        log = try TemporaryFile()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { _, new in new }
        process.environment = env
        process.standardOutput = log.handle
        process.standardError = log.handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var output: String { log.contents() }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// A temporary directory removed when the value goes away.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        // Short paths: Unix socket paths are limited to 108 bytes.
        url = URL(fileURLWithPath: "/tmp/flt-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Polls `condition` until it holds or `timeout` passes.
func waitFor(timeout: TimeInterval = 20, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    return try condition()
}

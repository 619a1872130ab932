import Foundation

/// Runs blocking work (libarchive over a large tree) on a thread of its own, off Swift's
/// cooperative pool, which has only as many threads as cores.
public func onThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try work() }) }
        thread.name = "flare-archive"
        thread.start()
    }
}

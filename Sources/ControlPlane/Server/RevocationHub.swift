import FlareContracts
import Foundation

/// Where revocations go: the embedded gateway's live connections right away, and every standalone
/// gateway subscribed to the revocation stream.
final class RevocationHub: @unchecked Sendable {
    /// The embedded gateway's revoke: closes its matching connections, returns how many.
    private let revokeLocally: @Sendable (Revocation) -> Int
    private let lock = NSLock()
    private var subscribers: [UUID: AsyncStream<Revocation>.Continuation] = [:]

    init(revokeLocally: @escaping @Sendable (Revocation) -> Int) {
        self.revokeLocally = revokeLocally
    }

    /// Closes matching connections here and tells every standalone gateway; returns how many
    /// connections the embedded gateway closed.
    @discardableResult
    func publish(_ revocation: Revocation) -> Int {
        let streams = lock.withLock { Array(subscribers.values) }
        streams.forEach { $0.yield(revocation) }
        return revokeLocally(revocation)
    }

    /// A stream of every revocation published from now on, until `finish` or the caller stops reading.
    func subscribe() -> AsyncStream<Revocation> {
        let id = UUID()
        let (stream, continuation) = AsyncStream.makeStream(of: Revocation.self, bufferingPolicy: .bufferingNewest(10_000))
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            _ = lock.withLock { self.subscribers.removeValue(forKey: id) }
        }
        lock.withLock { subscribers[id] = continuation }
        return stream
    }

    /// Ends every subscriber's stream (server shutdown).
    func finish() {
        let streams = lock.withLock { Array(subscribers.values) }
        streams.forEach { $0.finish() }
    }
}

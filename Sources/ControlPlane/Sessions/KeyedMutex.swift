/// Runs operations on the same key one at a time, in arrival order; different keys run freely.
actor KeyedMutex {
    private var queues: [String: [CheckedContinuation<Void, Never>]] = [:]

    func withLock<T: Sendable>(_ key: String, _ body: @Sendable () async throws -> T) async rethrows -> T {
        await acquire(key)
        defer { release(key) }
        return try await body()
    }

    private func acquire(_ key: String) async {
        if queues[key] == nil {
            queues[key] = []
            return
        }
        await withCheckedContinuation { queues[key]!.append($0) }
    }

    private func release(_ key: String) {
        guard var waiting = queues[key] else { return }
        if waiting.isEmpty {
            queues[key] = nil
        } else {
            let next = waiting.removeFirst()
            queues[key] = waiting
            next.resume()
        }
    }
}

/// The last `capacity` bytes of a terminal's output, replayed to a client that reconnects.
struct ReplayBuffer: Sendable {
    let capacity: Int
    private var storage: [UInt8] = []
    /// Where the oldest byte is once the buffer has wrapped.
    private var start = 0

    init(capacity: Int) {
        self.capacity = capacity
        storage.reserveCapacity(capacity)
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        var input = bytes
        if input.count >= capacity {
            input = UnsafeRawBufferPointer(rebasing: input[(input.count - capacity)...])
            storage = Array(input)
            start = 0
            return
        }
        let room = capacity - storage.count
        if room > 0 {
            let taken = min(room, input.count)
            storage.append(contentsOf: input[..<taken])
            input = UnsafeRawBufferPointer(rebasing: input[taken...])
        }
        for byte in input {
            storage[start] = byte
            start = (start + 1) % capacity
        }
    }

    /// The kept bytes, oldest first.
    var contents: [UInt8] {
        Array(storage[start...] + storage[..<start])
    }
}

import Foundation
import FlareContracts

/// The agent's activity counters, shared by all connection threads and read by the heartbeat.
public final class AgentActivity: @unchecked Sendable {
    private let lock = NSLock()
    private var figures = AgentHeartbeat()

    public init() {}

    /// A copy of the current figures.
    public var snapshot: AgentHeartbeat { lock.withLock { figures } }

    func connectionOpened() {
        lock.withLock {
            figures.openConnections += 1
            figures.lastConnectionAt = Date()
        }
    }

    func connectionClosed() {
        lock.withLock {
            figures.openConnections -= 1
            figures.lastConnectionAt = Date()
        }
    }
    func channelOpened() { lock.withLock { figures.openChannels += 1 } }
    func channelClosed() { lock.withLock { figures.openChannels -= 1 } }

    func received(_ count: Int) {
        lock.withLock {
            figures.bytesIn += UInt64(count)
            figures.lastInputAt = Date()
        }
    }

    func sent(_ count: Int) { lock.withLock { figures.bytesOut += UInt64(count) } }
}

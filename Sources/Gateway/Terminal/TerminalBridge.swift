import FlareContracts
import FlareSSH
import Foundation
import Logging

/// The gateway's browser terminals: logs in to agents with the gateway's service key, and keeps
/// each shell for a while after its client leaves so a reconnect gets it back.
public final class TerminalBridge: @unchecked Sendable {
    /// The key agents trust for the terminal bridge (its public half is registered with the control plane).
    let serviceKey: SSHKey
    /// How long a shell without a client is kept.
    let detachTimeout: Duration
    /// Output kept for a reconnect.
    let replayBytes: Int
    private let lock = NSLock()
    private var shells: [String: TerminalShell] = [:]

    public init(serviceKey: SSHKey, detachTimeout: Duration = .seconds(300), replayBytes: Int = 64 * 1024) {
        self.serviceKey = serviceKey
        self.detachTimeout = detachTimeout
        self.replayBytes = replayBytes
    }

    /// Loads the service key from `path`, creating it (mode 0600) on first use.
    public static func loadOrCreateServiceKey(at path: String) throws -> SSHKey {
        if FileManager.default.fileExists(atPath: path) { return try SSHKey(privateKeyFile: path) }
        let key = try SSHKey.generateEd25519()
        try key.writePrivateKey(to: path)
        return key
    }

    /// The public half agents must trust: `ssh-ed25519 AAAA… flare-gateway`.
    public var servicePublicKey: String { serviceKey.publicKeyLine + " flare-gateway" }

    /// The live shell `id` if it belongs to the same user and session.
    func shell(id: String, for claims: RuntimeTokenClaims) -> TerminalShell? {
        lock.withLock {
            guard let shell = shells[id], !shell.hasEnded, shell.claims.userId == claims.userId,
                  shell.claims.sessionId == claims.sessionId
            else { return nil }
            return shell
        }
    }

    /// Starts a new login shell on the agent.
    func open(_ authorized: GatewayAuthorization, cols: Int, rows: Int) async throws -> TerminalShell {
        let shell = try TerminalShell(id: FlareID.make("trm"), claims: authorized.claims, replayCapacity: replayBytes)
        lock.withLock { shells[shell.id] = shell }
        let id = shell.id
        try await shell.start(socketPath: authorized.session.endpoint.socketPath, hostPublicKey: authorized.session.hostPublicKey,
                              serviceKey: serviceKey, cols: cols, rows: rows) { [weak self] in
            self?.remove(id)
        }
        return shell
    }

    private func remove(_ id: String) {
        _ = lock.withLock { shells.removeValue(forKey: id) }
    }

    /// Ends every shell the revocation matches, attached or not; returns how many.
    @discardableResult
    public func close(_ revocation: Revocation) -> Int {
        let closing = lock.withLock { shells.values.filter { revocation.matches($0.claims) } }
        closing.forEach { $0.terminate() }
        return closing.count
    }

    /// Ends shells whose client has been gone longer than ``detachTimeout``.
    func expireDetached(now: ContinuousClock.Instant = .now) {
        let expired = lock.withLock {
            shells.values.filter { shell in shell.detachedAt.map { now - $0 >= detachTimeout } ?? false }
        }
        expired.forEach { $0.terminate() }
    }

    /// Runs ``expireDetached(now:)`` until cancelled.
    public func runExpiry() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: min(detachTimeout, .seconds(10)))
            expireDetached()
        }
    }

    /// Ends every shell (shutdown).
    public func closeAll() {
        lock.withLock { Array(shells.values) }.forEach { $0.terminate() }
    }
}

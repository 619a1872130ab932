import FlareContracts
import Foundation
import Logging
import ServiceLifecycle

/// Keeps sessions honest: sleeps running sessions idle past their template's idle timeout,
/// purges sessions asleep past their sleep TTL (with their snapshots), and collects blobs
/// nothing refers to. Every decision is a session event whose reason says what was seen.
struct ReconcileService: Service {
    let store: Store
    let lifecycle: SessionLifecycle
    let blobs: FileBlobStore
    let interval: Duration
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                return
            }
            do {
                try await reconcile(now: Date())
            } catch {
                logger.error("reconcile failed", metadata: ["error": "\(error)"])
            }
        }
    }

    func reconcile(now: Date) async throws {
        for session in try await store.sessions(inStates: [.running, .sleeping]) {
            guard let manifest = try await store.templateVersion(id: session.templateVersionId)?.manifest else {
                continue
            }
            if session.state == .running, let reason = idleReason(session, manifest: manifest, now: now) {
                _ = try? await lifecycle.stop(session.id, reason: reason)
            } else if session.state == .sleeping,
                      now.timeIntervalSince(session.updatedAt) > TimeInterval(manifest.sleepTtlSeconds)
            {
                try? await lifecycle.delete(session.id, reason: "purged: asleep longer than its \(manifest.sleepTtlSeconds)s sleep TTL")
                try await store.deleteSnapshots(sessionId: session.id)
            }
        }
        let store = self.store
        let removed = try await blobs.collectGarbage { try await store.referencedBlobDigests() }
        if removed > 0 { logger.info("removed unreferenced blobs", metadata: ["blobs.removed": "\(removed)"]) }
    }

    /// Why a running session should sleep now, or nil while it is in use. A session is in use
    /// while a connection is open; otherwise its idle time counts from its last input (or from
    /// when it started running, if there was none).
    func idleReason(_ session: SessionRecord, manifest: TemplateManifest, now: Date) -> String? {
        let activity = session.activityJson.flatMap {
            try? FlareJSON.decoder().decode(AgentHeartbeat.self, from: Data($0.utf8))
        }
        if let activity, activity.openConnections > 0 { return nil }
        let input = activity?.lastInputAt ?? .distantPast, connection = activity?.lastConnectionAt ?? .distantPast
        let since = max(input, connection, session.updatedAt)
        let idle = now.timeIntervalSince(since)
        guard idle > TimeInterval(manifest.idleTimeoutSeconds) else { return nil }
        let formatter = ISO8601DateFormatter()
        let last = switch since {
        case session.updatedAt: "no SSH activity since it started at \(formatter.string(from: since))"
        case input: "last SSH input at \(formatter.string(from: since))"
        default: "last SSH connection ended at \(formatter.string(from: since))"
        }
        return "idle for \(Int(idle))s (timeout \(manifest.idleTimeoutSeconds)s): no open connections, \(last)"
    }
}

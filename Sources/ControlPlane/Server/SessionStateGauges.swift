import CoreMetrics
import FlareContracts
import GRDB

/// `flare_sessions{state=…}`: how many sessions are in each state, read from the store when
/// `/metrics` is scraped.
struct SessionStateGauges: Sendable {
    private let gauges: [SessionState: Gauge]

    init(factory: any MetricsFactory) {
        var gauges: [SessionState: Gauge] = [:]
        for state in SessionState.allCases where state != .deleted {
            gauges[state] = Gauge(label: "flare_sessions", dimensions: [("state", state.rawValue)], factory: factory)
        }
        self.gauges = gauges
    }

    func update(from store: Store) async {
        guard let counts = try? await store.sessionCountsByState() else { return }
        for (state, gauge) in gauges {
            gauge.record(counts[state] ?? 0)
        }
    }
}

extension Store {
    func sessionCountsByState() async throws -> [SessionState: Int] {
        try await read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM sessions GROUP BY state")
            var counts: [SessionState: Int] = [:]
            for row in rows {
                if let state = SessionState(rawValue: row["state"]) { counts[state] = row["n"] }
            }
            return counts
        }
    }
}

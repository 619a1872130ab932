import CoreMetrics
import FlareContracts

/// What the gateway counts, recorded through swift-metrics (rendered by the process's `/metrics`).
public struct GatewayMetrics: Sendable {
    let factory: any MetricsFactory
    private let openSSH: Meter
    private let openTerminal: Meter
    let bytesToAgent: Counter
    let bytesFromAgent: Counter
    let connectLatency: Timer
    let wakeLatency: Timer

    public init(factory: any MetricsFactory) {
        self.factory = factory
        openSSH = Meter(label: "flare_gateway_open_connections", dimensions: [("purpose", "ssh")], factory: factory)
        openTerminal = Meter(label: "flare_gateway_open_connections", dimensions: [("purpose", "terminal")],
                             factory: factory)
        bytesToAgent = Counter(label: "flare_gateway_relayed_bytes_total", dimensions: [("direction", "to_agent")],
                               factory: factory)
        bytesFromAgent = Counter(label: "flare_gateway_relayed_bytes_total",
                                 dimensions: [("direction", "from_agent")], factory: factory)
        connectLatency = Timer(label: "flare_gateway_connect_seconds", factory: factory)
        wakeLatency = Timer(label: "flare_gateway_wake_seconds", factory: factory)
    }

    func open(_ purpose: RuntimeTokenPurpose) -> Meter {
        purpose == .ssh ? openSSH : openTerminal
    }

    /// Counts a refused connection by a short reason (`expired`, `revoked`, `wrong_session`…).
    func authorizationFailed(_ reason: String) {
        Counter(label: "flare_gateway_authorization_failures_total", dimensions: [("reason", reason)],
                factory: factory).increment()
    }
}

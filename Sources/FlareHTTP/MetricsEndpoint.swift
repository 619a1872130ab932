import CoreMetrics
import Hummingbird
import Prometheus

/// One process's metrics: components record through swift-metrics with ``factory``; `/metrics`
/// renders ``registry`` in Prometheus text format.
///
/// Passed in through `init` (no global `MetricsSystem.bootstrap`), so tests and two servers in one
/// process keep separate figures.
public struct MetricsEndpoint: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: any MetricsFactory

    /// Latency buckets from 5 ms to 60 s: connects take milliseconds, wakes take seconds.
    public static let latencyBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(15), .seconds(60),
    ]

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.latencyBuckets
        self.factory = factory
    }

    /// Adds `GET /metrics`; `before` refreshes gauges computed on demand (e.g. sessions by state).
    public func addRoute<Context: RequestContext>(to router: Router<Context>,
                                                  before: @escaping @Sendable () async -> Void = {}) {
        let registry = self.registry
        router.get("/metrics") { _, _ -> Response in
            await before()
            var bytes: [UInt8] = []
            registry.emit(into: &bytes)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        }
    }
}

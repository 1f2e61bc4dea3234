import CoreMetrics
import Foundation
import Metrics
import Prometheus

/// The monitor's metrics, through swift-metrics into a Prometheus registry that `GET /metrics` emits.
/// Threading: every method from any thread (the metric handlers are thread-safe).
public final class WebMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    // Made in `init`, after the bootstrap: made before it, they would be no-ops.
    private let events: [String: Metrics.Counter]
    private let voicedSeconds: FloatingPointCounter
    private let dropped, overruns, reopens, captureUp, clients: Metrics.Gauge
    private let hopAnalysis, labelLatency: Metrics.Timer
    private let clientDrops, analysed, refused, brokerDrops: Metrics.Counter
    private let brokerUp: Metrics.Gauge

    /// Bootstraps swift-metrics (once per process) and makes a counter per label (and "silence").
    public init(labels: [String]) {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // One hop's analysis takes milliseconds; a label follows its audio by tens of them.
        factory.defaultDurationHistogramBuckets = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2].map { .milliseconds(Int64($0 * 1000)) }
        MetricsSystem.bootstrap(factory)
        self.registry = registry
        events = Dictionary(uniqueKeysWithValues: (labels + ["silence"]).map {
            ($0, Metrics.Counter(label: "emotion_monitor_events_total", dimensions: [("label", $0)]))
        })
        voicedSeconds = FloatingPointCounter(label: "emotion_monitor_voiced_seconds_total")
        dropped = Metrics.Gauge(label: "emotion_monitor_dropped_samples")
        overruns = Metrics.Gauge(label: "emotion_monitor_capture_overruns")
        reopens = Metrics.Gauge(label: "emotion_monitor_device_reopens")
        captureUp = Metrics.Gauge(label: "emotion_monitor_capture_up")
        clients = Metrics.Gauge(label: "emotion_monitor_sse_clients")
        hopAnalysis = Metrics.Timer(label: "emotion_monitor_hop_analysis_seconds")
        labelLatency = Metrics.Timer(label: "emotion_monitor_label_latency_seconds")
        clientDrops = Metrics.Counter(label: "emotion_monitor_sse_dropped_events_total")
        analysed = Metrics.Counter(label: "emotion_monitor_uploads_total", dimensions: [("result", "analysed")])
        refused = Metrics.Counter(label: "emotion_monitor_uploads_total", dimensions: [("result", "refused")])
        brokerDrops = Metrics.Counter(label: "emotion_monitor_broker_dropped_events_total")
        brokerUp = Metrics.Gauge(label: "emotion_monitor_broker_connected")
        captureUp.record(1)
        clients.record(0)
    }

    /// Prometheus text format.
    public var text: String { registry.emitToString() }

    /// One live event: its label (or silence), whether it was voiced, and the timings.
    public func event(label: String?, voicedSeconds seconds: Double, analysis: Double, latency: Double?) {
        events[label ?? "silence"]?.increment()
        if seconds > 0 { voicedSeconds.increment(by: seconds) }
        hopAnalysis.recordSeconds(analysis)
        if let latency { labelLatency.recordSeconds(latency) }
    }

    /// The capture's counters, as totals.
    public func capture(dropped: Int, overruns: Int, reopens: Int, up: Bool) {
        self.dropped.record(dropped)
        self.overruns.record(overruns)
        self.reopens.record(reopens)
        captureUp.record(up ? 1 : 0)
    }

    func sseClients(_ count: Int) { clients.record(count) }
    func sseEventDropped() { clientDrops.increment() }
    func upload(analysed ok: Bool) { (ok ? analysed : refused).increment() }
    func brokerEventDropped() { brokerDrops.increment() }
    func broker(connected: Bool) { brokerUp.record(connected ? 1 : 0) }
}

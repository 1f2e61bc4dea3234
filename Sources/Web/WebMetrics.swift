import CoreMetrics
import Foundation
import Metrics
import Output
import Prometheus
import Streaming
import Synchronization

/// The monitor's metrics, through swift-metrics into a Prometheus registry that `GET /metrics` emits.
/// Threading: every method from any thread (the metric handlers are thread-safe).
public final class WebMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    /// The model's emotion labels, in its output order.
    private let labels: [String]
    private let events: [String: Metrics.Counter]
    private let voicedSeconds: FloatingPointCounter
    private let dropped, overruns, reopens: Metrics.Counter
    /// The capture's totals at the last report: its counters only ever grow, so they advance by the difference.
    private let captureTotals = Mutex((dropped: 0, overruns: 0, reopens: 0))
    private let captureUp, clients: Metrics.Gauge
    private let hopAnalysis, labelLatency: Metrics.Timer
    private let clientDrops, analysed, refused, brokerDrops: Metrics.Counter
    private let brokerUp: Metrics.Gauge

    /// Makes every metric, a counter per label (and "silence"), through a factory of its own rather
    /// than swift-metrics' process-wide bootstrap, which allows one per process (a second server,
    /// as tests start, would trap).
    public init(labels: [String]) {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // One hop's analysis takes milliseconds; a label follows its audio by tens of them.
        factory.defaultDurationHistogramBuckets = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2].map { .milliseconds(Int64($0 * 1000)) }
        self.registry = registry
        self.labels = labels
        events = Dictionary(uniqueKeysWithValues: (labels + ["silence"]).map {
            ($0, Metrics.Counter(label: "emotion_monitor_events_total", dimensions: [("label", $0)], factory: factory))
        })
        voicedSeconds = FloatingPointCounter(label: "emotion_monitor_voiced_seconds_total", factory: factory)
        dropped = Metrics.Counter(label: "emotion_monitor_dropped_samples_total", factory: factory)
        overruns = Metrics.Counter(label: "emotion_monitor_capture_overruns_total", factory: factory)
        reopens = Metrics.Counter(label: "emotion_monitor_device_reopens_total", factory: factory)
        captureUp = Metrics.Gauge(label: "emotion_monitor_capture_up", factory: factory)
        clients = Metrics.Gauge(label: "emotion_monitor_sse_clients", factory: factory)
        hopAnalysis = Metrics.Timer(label: "emotion_monitor_hop_analysis_seconds", factory: factory)
        labelLatency = Metrics.Timer(label: "emotion_monitor_label_latency_seconds", factory: factory)
        clientDrops = Metrics.Counter(label: "emotion_monitor_sse_dropped_events_total", factory: factory)
        analysed = Metrics.Counter(label: "emotion_monitor_uploads_total", dimensions: [("result", "analysed")], factory: factory)
        refused = Metrics.Counter(label: "emotion_monitor_uploads_total", dimensions: [("result", "refused")], factory: factory)
        brokerDrops = Metrics.Counter(label: "emotion_monitor_broker_dropped_events_total", factory: factory)
        brokerUp = Metrics.Gauge(label: "emotion_monitor_broker_connected", factory: factory)
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

    /// The capture's counters, as totals since the start.
    public func capture(dropped: Int, overruns: Int, reopens: Int, up: Bool) {
        let last = captureTotals.withLock { totals in
            defer { totals = (max(totals.dropped, dropped), max(totals.overruns, overruns), max(totals.reopens, reopens)) }
            return totals
        }
        if dropped > last.dropped { self.dropped.increment(by: dropped - last.dropped) }
        if overruns > last.overruns { self.overruns.increment(by: overruns - last.overruns) }
        if reopens > last.reopens { self.reopens.increment(by: reopens - last.reopens) }
        captureUp.record(up ? 1 : 0)
    }

    func sseClients(_ count: Int) { clients.record(count) }
    func sseEventDropped() { clientDrops.increment() }
    func upload(analysed ok: Bool) { (ok ? analysed : refused).increment() }
    public func brokerEventDropped() { brokerDrops.increment() }
    public func broker(connected: Bool) { brokerUp.record(connected ? 1 : 0) }
}

/// The metrics as a live sink: collected in every listen mode (the broker counts its drops here too);
/// `--serve` exposes them at `/metrics`.
extension WebMetrics: LiveEventSink {
    public func receive(_ event: LiveEvent, _ context: LiveEventContext) {
        self.event(label: event.label.map { labels[$0] }, voicedSeconds: event.voice ? context.hopSeconds : 0,
                   analysis: event.analysisSeconds, latency: context.latency)
    }

    public func receive(health: SourceHealth, dropped: Int) {
        capture(dropped: dropped, overruns: health.overruns, reopens: health.reopens, up: !health.reconnecting)
    }
}

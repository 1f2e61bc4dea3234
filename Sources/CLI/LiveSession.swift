import Capture
import Dispatch
import Foundation
import Logging
import Model
import Output
import RingBuffer
import ServiceLifecycle
import Streaming

/// One run of `listen`: wires source, ring and analyzer, hands every event and health report to
/// its sinks, and ends when the stream does, a signal stops it or its service group shuts down.
/// It owns the process's signals (SIGINT and SIGTERM drain the ring and end it; SIGHUP reopens the
/// log headless), and `listen`'s group shuts the other services down once it ends.
/// Threading: `run` from a task; everything after it starts happens on `queue`.
/// Unchecked Sendable: mutable state is touched on `queue` only (`done` is set before the monitor starts).
final class LiveSession: Service, @unchecked Sendable {
    private let queue = DispatchQueue(label: "emotion-monitor.analyzer", qos: .userInteractive)
    private let monitor: LiveMonitor<SlidingWindow>
    /// Where events go (status line, stdout, log, metrics, web side, broker), in that order.
    private var sinks: [LiveEventSink]
    /// The JSON line every sink that sends one shares.
    private let record: EventRecord
    private let headless: Bool
    private let logger: Logger
    private var done: CheckedContinuation<String?, Never>?
    /// Whether the monitor has started, and whether a stop came first (the group can shut down
    /// before this service ran, when another failed at once).
    private var started = false, stopRequested = false
    /// Set when a sink failed: the run stops and ends with it, so systemd sees the failure.
    private var outputFailure: String?
    private var signals: [DispatchSourceSignal] = []
    private var health: DispatchSourceTimer?
    private var lastHealth = (dropped: 0, health: SourceHealth())
    private let hopSeconds: Double
    private let realTime: Bool
    private var startedAt = Date()

    init(config: Configuration, weights: ModelWeights, normalisation: Normalisation, device: String, replay: [String], fast: Bool, duration: Double?,
         headless: Bool, sinks: [LiveEventSink], logger: Logger) throws {
        self.logger = logger
        self.sinks = sinks
        self.headless = headless
        record = EventRecord(labels: weights.card.labels, sexLabels: weights.card.sexLabels, format: .jsonl)
        hopSeconds = config.windows.hopSeconds
        realTime = !fast
        let (source, ring) = try openSource(device: device, replay: replay, fast: fast, reopen: headless, settings: config.listen)
        logger.info("capturing", metadata: ["source": "\(source.summary)"])
        let window = try SlidingWindow(classifier: EmotionClassifier(weights: weights), windows: config.windows,
                                       speech: config.speech, smoothing: config.smoothing, normalisation: normalisation,
                                       inputRate: source.sampleRate)
        var deliver: ((LiveEvent) -> Void)?
        var end: ((String?) -> Void)?
        monitor = LiveMonitor(source: source, ring: ring, window: window, queue: queue, stopAfterSeconds: duration,
                              onEvent: { deliver?($0) }, onEnd: { end?($0) })
        deliver = { [unowned self] in self.handle($0) }
        end = { [unowned self] in self.finish($0) }
    }

    /// Runs until the stream ends, SIGINT/SIGTERM or the group's shutdown; throws the reason if it ended on an error.
    func run() async throws {
        let failure = await withGracefulShutdownHandler {
            await withCheckedContinuation { done in
                self.done = done
                begin()
            }
        } onGracefulShutdown: { [self] in stop() }
        if let failure { throw Failure(failure) }
    }

    private func begin() {
        // A closed pipe or a file-size limit must not kill the process mid-line: writes fail
        // instead, and the run ends with a diagnostic.
        signal(SIGPIPE, SIG_IGN)
        signal(SIGXFSZ, SIG_IGN)
        // Headless, SIGHUP is logrotate's "reopen the log"; on a terminal it means the terminal has gone.
        for number in [SIGINT, SIGTERM, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            let reopens = number == SIGHUP && headless
            source.setEventHandler { [unowned self] in reopens ? reopenFiles() : stop() }
            source.resume()
            signals.append(source)
        }
        let health = DispatchSource.makeTimerSource(queue: queue)
        health.schedule(deadline: .now() + 1, repeating: 1)
        health.setEventHandler { [unowned self] in reportHealth() }
        health.resume()
        self.health = health
        startedAt = Date()
        monitor.start()
        queue.async { [self] in
            started = true
            if stopRequested { monitor.stop() }
        }
        // What arrived while starting is sent again, now to the handlers above.
        for number in [SIGINT, SIGTERM, SIGHUP] where EarlySignals.take(number) { kill(getpid(), number) }
    }

    /// Drains the ring and ends; from any thread.
    private func stop() {
        queue.async { [self] in
            guard !stopRequested else { return }
            stopRequested = true
            logger.info("stopping: draining the ring")
            if started { monitor.stop() }
        }
    }

    private func reopenFiles() {
        for sink in sinks {
            do {
                if let path = try sink.reopen() { logger.info("log reopened", metadata: ["path": "\(path)"]) }
            } catch {
                logger.error("\(error)")
            }
        }
    }

    private func handle(_ event: LiveEvent) {
        let now = Date()
        // In real time, a window's audio ended `end` seconds after the start: the rest is the label's delay.
        let latency = now.timeIntervalSince(startedAt) - event.end
        let context = LiveEventContext(event: event, record: record, time: now, dropped: monitor.droppedSamples,
                                       overruns: monitor.source.health.overruns, latency: realTime && latency >= 0 ? latency : nil,
                                       hopSeconds: hopSeconds)
        var failed: [Int] = []
        for (i, sink) in sinks.enumerated() {
            do { try sink.receive(event, context) } catch let failure as SinkFailure {
                guard failure.stopsTheRun else {
                    logger.error("\(failure)")
                    failed.append(i)
                    continue
                }
                return fail(failure.description)
            } catch {
                return fail("\(error)")
            }
        }
        for i in failed.reversed() { sinks.remove(at: i) }
    }

    /// A sink failed: say so once and stop with a failure.
    private func fail(_ message: String) {
        guard outputFailure == nil else { return }
        outputFailure = message  // reported once, as the run's error, when the ring has drained
        monitor.stop()
    }

    /// Logs what changed in the capture's health (drops, overruns, device loss and reopen) and tells the sinks.
    private func reportHealth() {
        let (dropped, now) = (monitor.droppedSamples, monitor.source.health)
        let last = lastHealth.health
        if dropped > lastHealth.dropped { logger.warning("analyzer fell behind", metadata: ["dropped_samples": "\(dropped)"]) }
        if now.overruns > last.overruns { logger.warning("capture overrun", metadata: ["overruns": "\(now.overruns)"]) }
        if now.reconnecting && !last.reconnecting { logger.error("capture device lost; reopening with backoff") }
        if now.reopens > last.reopens { logger.notice("capture device was lost and has been reopened", metadata: ["reopens": "\(now.reopens)"]) }
        lastHealth = (dropped, now)
        for sink in sinks { sink.receive(health: now, dropped: dropped) }
    }

    private func finish(_ failure: String?) {
        for sink in sinks { sink.finish() }
        health?.cancel()
        for source in signals { source.cancel() }
        done?.resume(returning: failure ?? outputFailure)
        done = nil
    }
}

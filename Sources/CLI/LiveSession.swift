import Capture
import Dispatch
import Foundation
import Logging
import Model
import Output
import RingBuffer
import Streaming
import Web

/// One run of `listen`: wires source, ring, analyzer and sinks, handles signals, and returns when
/// the stream ends or a signal stops it.
/// Threading: built and run on the main thread; everything after `run()` starts happens on `queue`.
final class LiveSession {
    private let queue = DispatchQueue(label: "emotion-monitor.analyzer", qos: .userInteractive)
    private let monitor: LiveMonitor
    private let status: StatusLine?
    /// Events on stdout, the web side and the broker are JSON lines; the log has its own format.
    private let jsonRecord: EventRecord
    private let logRecord: EventRecord
    /// False once stdout has failed beside a log (the log goes on).
    private var printEvents: Bool
    private var eventLog: EventLog?
    private let headless: Bool
    private let logger: Logger
    private let done = DispatchSemaphore(value: 0)
    private var failure: String?
    /// Set when a sink failed: the run stops and ends with it, so systemd sees the failure.
    private var outputFailure: String?
    private var signals: [DispatchSourceSignal] = []
    private var health: DispatchSourceTimer?
    private var lastHealth = (dropped: 0, overruns: 0, reopens: 0, reconnecting: false)
    let labels: [String]
    /// The web side, when serving, and the broker, when publishing: every event goes to them too.
    private let web: WebServer?
    private let broker: BrokerPublisher?
    private let hopSeconds: Double
    private let realTime: Bool
    private var startedAt = Date()

    init(config: Configuration, weights: ModelWeights, normalisation: Normalisation, device: String, replay: [String], fast: Bool, duration: Double?,
         headless: Bool, logPath: String?, logFormat: EventFormat, web: WebServer?, broker: BrokerPublisher?, logger: Logger) throws {
        self.logger = logger
        labels = weights.card.labels
        self.web = web
        self.broker = broker
        hopSeconds = config.windows.hopSeconds
        realTime = !fast
        let source: AudioSource
        let ring: SampleRing
        if !replay.isEmpty {
            let replaySource = try ReplaySource(paths: replay, ringSeconds: config.listen.ringSeconds, realTime: !fast)
            (source, ring) = (replaySource, replaySource.ring)
        } else {
            let capture = try CaptureDevice(name: device, preferredSampleRate: config.listen.sampleRate)
            ring = SampleRing(capacity: Int(config.listen.ringSeconds * Double(capture.format.sampleRate)))
            source = CaptureThread(device: capture, ring: ring, reopen: headless)
            logger.info("capturing", metadata: ["device": "\(device)", "format": "\(capture.format)"])
        }
        let window = try SlidingWindow(classifier: EmotionClassifier(weights: weights), windows: config.windows,
                                       speech: config.speech, smoothing: config.smoothing, normalisation: normalisation,
                                       inputRate: source.sampleRate)
        let interactive = !headless && isatty(STDOUT_FILENO) == 1
        status = interactive ? StatusLine(labels: labels, colour: StatusLine.colourAllowed()) : nil
        // Kiosk: events on stdout unless they go to a log. Piped without --headless: events on stdout.
        printEvents = headless ? logPath == nil : !interactive
        jsonRecord = EventRecord(labels: labels, sexLabels: weights.card.sexLabels, format: .jsonl)
        logRecord = EventRecord(labels: labels, sexLabels: weights.card.sexLabels, format: logFormat)
        self.headless = headless
        if let logPath {
            eventLog = try EventLog(path: logPath, header: logFormat == .csv ? logRecord.csvHeader : nil)
        }
        var deliver: ((LiveEvent) -> Void)?
        var end: ((String?) -> Void)?
        monitor = LiveMonitor(source: source, ring: ring, window: window, queue: queue, stopAfterSeconds: duration,
                              onEvent: { deliver?($0) }, onEnd: { end?($0) })
        deliver = { [unowned self] in self.handle($0) }
        end = { [unowned self] in self.finish($0) }
    }

    /// Runs until the stream ends or SIGINT/SIGTERM; returns the reason if it ended on an error.
    func run() -> String? {
        // A closed pipe or a file-size limit must not kill the process mid-line: writes fail
        // instead, and the run ends with a diagnostic.
        signal(SIGPIPE, SIG_IGN)
        signal(SIGXFSZ, SIG_IGN)
        // Headless, SIGHUP is logrotate's "reopen the log"; on a terminal it means the terminal has gone.
        let hangUp: () -> Void = headless ? reopenLog : stop
        for (number, action) in [(SIGINT, stop), (SIGTERM, stop), (SIGHUP, hangUp)] as [(Int32, () -> Void)] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler(handler: action)
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
        // What arrived while starting is sent again, now to the handlers above.
        for number in [SIGINT, SIGTERM, SIGHUP] where EarlySignals.take(number) { kill(getpid(), number) }
        done.wait()
        return failure
    }

    private func stop() {
        logger.info("stopping: draining the ring")
        monitor.stop()
    }

    private func reopenLog() {
        guard let eventLog else { return }
        do {
            try eventLog.reopen()
            logger.info("log reopened", metadata: ["path": "\(eventLog.path)"])
        } catch {
            logger.error("\(error)")
        }
    }

    private var overruns: Int { monitor.source.overruns }

    private func handle(_ event: LiveEvent) {
        let dropped = monitor.droppedSamples
        status?.draw(event, dropped: dropped, overruns: overruns)
        let now = Date()
        // One JSON line for every sink that takes one.
        let json = printEvents || web != nil || broker != nil ? jsonRecord.line(event, at: now, dropped: dropped, overruns: overruns) : ""
        web?.hub.publish(json)
        broker?.publish(json)
        if let web {
            // In real time, a window's audio ended `end` seconds after the start: the rest is the label's delay.
            let latency = now.timeIntervalSince(startedAt) - event.end
            web.metrics.event(label: event.label.map { labels[$0] }, voicedSeconds: event.voice ? hopSeconds : 0,
                              analysis: event.analysisSeconds, latency: realTime && latency >= 0 ? latency : nil)
        }
        if printEvents {
            do { try StandardOutput.line(json) } catch {
                // With a log beside it, the events still reach the log; alone, nothing would.
                guard eventLog != nil else { return fail("\(error); stopping") }
                logger.error("\(error); events go to the log only from now on")
                printEvents = false
            }
        }
        guard let eventLog else { return }
        do { try eventLog.write(logRecord.line(event, at: now, dropped: dropped, overruns: overruns)) } catch {
            fail("\(error); events are being lost, stopping")
        }
    }

    /// A sink failed: say so once and stop with a failure.
    private func fail(_ message: String) {
        guard outputFailure == nil else { return }
        outputFailure = message  // reported once, as the run's error, when the ring has drained
        monitor.stop()
    }

    /// Logs what changed in the capture's health: drops, overruns, device loss and reopen.
    private func reportHealth() {
        let capture = monitor.source as? CaptureThread
        let now = (dropped: monitor.droppedSamples, overruns: overruns, reopens: capture?.reopens ?? 0,
                   reconnecting: capture?.isReconnecting ?? false)
        if now.dropped > lastHealth.dropped { logger.warning("analyzer fell behind", metadata: ["dropped_samples": "\(now.dropped)"]) }
        if now.overruns > lastHealth.overruns { logger.warning("capture overrun", metadata: ["overruns": "\(now.overruns)"]) }
        if now.reconnecting && !lastHealth.reconnecting { logger.error("capture device lost; reopening with backoff") }
        if now.reopens > lastHealth.reopens { logger.notice("capture device was lost and has been reopened", metadata: ["reopens": "\(now.reopens)"]) }
        lastHealth = now
        web?.capture(running: !now.reconnecting)
        web?.metrics.capture(dropped: now.dropped, overruns: now.overruns, reopens: now.reopens, up: !now.reconnecting)
    }

    private func finish(_ failure: String?) {
        status?.finish()
        health?.cancel()
        self.failure = failure ?? outputFailure
        done.signal()
    }
}

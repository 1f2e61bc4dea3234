import ArgumentParser
import Broker
import Capture
import Dispatch
import Foundation
import Logging
import Model
import Output
import RingBuffer
import ServiceLifecycle
import Streaming
import Web

struct Listen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Monitor a microphone (or replay a recording) live: status line, emotion log, or headless kiosk mode.",
        discussion: """
        Interactive on a terminal: one status line, redrawn every hop. --headless: events as JSON lines on \
        stdout (or only to --log), diagnostics on stderr, SIGINT/SIGTERM drain and exit 0, SIGHUP reopens \
        the log, and a lost capture device is reopened with backoff.
        """)

    @OptionGroup var source: SourceOptions

    @Flag(help: "With --replay: as fast as the analyzer goes instead of real time.")
    var fast = false

    @Option(help: "Stop after this many seconds of audio.")
    var duration: Double?

    @Option(help: "Append one line per event to this file (flushed per line).")
    var log: String?

    @Option(name: .customLong("log-format"), help: "Event log format: jsonl or csv (default: config listen.logFormat).")
    var logFormat: EventFormat?

    @Flag(help: "Kiosk mode: no status line, JSON events, diagnostics on stderr, device loss survived.")
    var headless = false

    @Option(help: "Voiced windows averaged for the shown label (config smoothing.windows).")
    var smoothing: Int?

    @Option(help: "Probability lead needed to switch the shown label (config smoothing.hysteresis).")
    var hysteresis: Double?

    @OptionGroup var serving: ServeOptions

    @Option(help: "Publish every event to this MQTT broker, mqtt://[USER:PASSWORD@]HOST[:PORT], topic emotion-monitor/HOST/events, QoS 1.")
    var mqtt: String?

    @OptionGroup var speaker: ProfileOption
    @OptionGroup var common: CommonOptions

    func validate() throws {
        if fast && source.replay.isEmpty { throw ValidationError("--fast needs --replay") }
        if let duration, !(duration > 0 && duration <= 1e8) { throw ValidationError("--duration must be a number of seconds in (0, 100000000]") }
    }

    func run() async throws {
        var (config, weights) = try common.loadAnalysis(reading: source.replay + [speaker.profile].compactMap { $0 }, writing: [("--log", log)],
                                                        forProfile: speaker.profile != nil)
        if let smoothing { config.smoothing.windows = smoothing }
        if let hysteresis { config.smoothing.hysteresis = hysteresis }
        if let problem = config.problem { throw Failure(problem) }
        let logger = Logger.emotionMonitor(level: headless ? .info : .warning)

        let normalisation = try speaker.normalisation(for: weights.card)
        // Collected in every mode; --serve exposes them.
        let metrics = WebMetrics(labels: weights.card.labels)
        let web = try serving.settings().map { settings in
            let (analysis, model) = (config, weights)
            return WebServer(settings: settings, monitor: WebServer.Monitor(card: weights.card, analyze: { path in
                // A fresh analyzer per upload, on the server's upload queue: the live analyzer never waits for it.
                try ClipAnalyzer(classifier: EmotionClassifier(weights: model), windows: analysis.windows, speech: analysis.speech)
                    .analyze(path: path, segments: true, keepFeatures: true, normalisation: normalisation)
            }), metrics: metrics, logger: logger)
        }
        // The sinks, in the order each event reaches them. On a terminal: the status line. Events on
        // stdout when headless without a log, or when stdout is not a terminal; the log; metrics; web; broker.
        let interactive = !headless && isatty(STDOUT_FILENO) == 1
        var sinks: [LiveEventSink] = []
        if interactive { sinks.append(StatusLine(labels: weights.card.labels, colour: StatusLine.colourAllowed())) }
        if headless ? log == nil : !interactive { sinks.append(StandardOutputSink(besideALog: log != nil)) }
        if let log {
            sinks.append(try LogSink(path: log, record: EventRecord(labels: weights.card.labels, sexLabels: weights.card.sexLabels,
                                                                   format: logFormat ?? config.listen.logFormat)))
        }
        sinks.append(metrics)
        if let web { sinks.append(web) }
        var broker: BrokerPublisher?
        if let mqtt {
            do { broker = try BrokerPublisher(url: mqtt, metrics: metrics, logger: logger) } catch { throw Failure("\(error)") }
            sinks.append(broker!)
        }
        let session: LiveSession
        do {
            session = try LiveSession(config: config, weights: weights, normalisation: normalisation,
                                      device: source.device ?? config.listen.device,
                                      replay: source.replay, fast: fast, duration: duration, headless: headless,
                                      sinks: sinks, logger: logger)
        } catch {
            _ = broker?.stop(within: 0)  // nothing was published yet
            throw error
        }
        if let broker { logger.notice("publishing events to mqtt://\(broker.address) on \(broker.topic)") }
        // Shut down in reverse: the session (which owns the signals) drains first, then the web
        // side, then the broker, so the last events still reach both. Any one ending ends the rest.
        var services: [any Service] = []
        if let broker { services.append(broker) }
        if let web { services.append(web) }
        services.append(session)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup,
                                           failureTerminationBehavior: .gracefullyShutdownGroup) },
            logger: logger))
        do { try await group.run() } catch let error as Failure { throw error } catch { throw Failure("\(error)") }
    }
}

/// `--serve` and what goes with it.
struct ServeOptions: ParsableArguments {
    @Option(help: "Serve the live status page, /events, /analyze, /metrics and /healthz on HOST:PORT (loopback unless --token).")
    var serve: String?

    @Option(help: "With --serve: the bearer token every route but /healthz wants (required beyond loopback).")
    var token: String?

    @Option(name: .customLong("upload-limit"), help: "With --serve: largest upload in MB.")
    var uploadLimit: Int = 50

    func validate() throws {
        if serve == nil && token != nil { throw ValidationError("--token needs --serve") }
        if !(1...4096).contains(uploadLimit) { throw ValidationError("--upload-limit must be 1...4096 MB") }
    }

    /// The server's settings with --serve, else nil.
    func settings() throws -> WebServer.Settings? {
        guard let serve else { return nil }
        do { return try WebServer.Settings(address: serve, token: token, uploadLimitBytes: uploadLimit * 1_000_000) } catch { throw Failure("\(error)") }
    }
}

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List ALSA capture devices (the default is marked *).")

    func run() throws {
        let devices = CaptureDevice.listCaptureDevices()
        guard !devices.isEmpty else { throw Failure("no ALSA capture devices found") }
        for d in devices {
            let summary = d.description.split(separator: "\n").joined(separator: " — ")
            print((d.isDefault ? "* " : "  ") + d.name + (summary.isEmpty ? "" : "    " + summary))
        }
        try finishOutput()
    }
}

extension EventFormat: ExpressibleByArgument {}

/// The broker counts what it drops in the web side's metrics; the two modules do not know each other.
extension WebMetrics: BrokerMetrics {}

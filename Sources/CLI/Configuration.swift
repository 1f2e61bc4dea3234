import ArgumentParser
import Features
import Foundation
import Model
import Output
import Streaming

/// The program's settings: every default is here, and config.json holds only what a user
/// overrides (every key optional, an unknown one an error). Flags override single values.
/// Threading: a value type, freely shared.
struct Configuration: Codable {
    /// Model card: written relative to the config file's folder; the default is the program's own.
    var model: String
    /// The speaker-normalised model a profile is for, used instead of `model` by calibration and
    /// `--profile` when `model` is not speaker-normalised and no --model is given (null: none).
    var profileModel: String?
    var windows = WindowSettings()
    var speech = SpeechActivity(detector: VoiceDetector.Settings())
    var smoothing = SmoothingSettings()
    var listen = ListenSettings()

    struct ListenSettings: Codable {
        /// ALSA PCM name.
        var device = "default"
        /// Asked of the device; it may give its nearest rate, which is resampled to 16 kHz.
        var sampleRate = 48_000
        /// Ring buffer between capture and analyzer: how far the analyzer may fall behind before samples drop.
        var ringSeconds = 4.0
        var logFormat = EventFormat.jsonl

        init() {}

        enum CodingKeys: String, CodingKey, CaseIterable { case device, sampleRate, ringSeconds, logFormat }

        init(from decoder: Decoder) throws {
            let c = try decoder.settings(CodingKeys.self), d = ListenSettings()
            device = try c.value(.device, or: d.device)
            sampleRate = try c.value(.sampleRate, or: d.sampleRate)
            ringSeconds = try c.value(.ringSeconds, or: d.ringSeconds)
            logFormat = try c.value(.logFormat, or: d.logFormat)
        }
    }

    /// The default models, in the program's folder (see `Folders.program`).
    static let defaultModel = "Models/emotion-whisper.json", defaultProfileModel = "Models/emotion-cnn-sn.json"

    /// Where relative paths point: those the config file writes to its own folder, the defaults
    /// to the program's. Threading: a value type.
    struct Folders: Sendable {
        /// The config file's folder, if there is a config file.
        var file: URL?
        /// The checkout the running binary was built in (the first folder above it with `Models`),
        /// else where Deploy/README.md installs the models.
        var program: URL

        static let key = CodingUserInfoKey(rawValue: "emotion-monitor.folders")!

        static func programFolder() -> URL {
            CommandLine.foldersAbove.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent(defaultModel).path) }
                ?? URL(fileURLWithPath: "/usr/local/share/emotion-monitor")
        }

        /// `path` as written in the config file: absolute, or relative to the file's folder.
        func written(_ path: String) -> String { Self.path(path, relativeTo: file ?? program) }
        func builtIn(_ path: String) -> String { Self.path(path, relativeTo: program) }

        private static func path(_ path: String, relativeTo folder: URL) -> String {
            path.hasPrefix("/") || path.isEmpty ? path : folder.appendingPathComponent(path).path
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case model, profileModel, windows, speech, smoothing, listen }

    /// Paths come out absolute, resolved with the `Folders` in the decoder's user info.
    init(from decoder: Decoder) throws {
        let folders = decoder.userInfo[Folders.key] as? Folders ?? Folders(program: Folders.programFolder())
        let c = try decoder.settings(CodingKeys.self), d = Configuration(folders: folders)
        model = c.contains(.model) ? folders.written(try c.decode(String.self, forKey: .model)) : d.model
        profileModel = try c.value(.profileModel, or: d.profileModel as String?).map(folders.written)
        windows = try c.value(.windows, or: d.windows)
        speech = try c.value(.speech, or: d.speech)
        if let model = speech.detector?.model { speech.detector?.model = folders.written(model) }
        smoothing = try c.value(.smoothing, or: d.smoothing)
        listen = try c.value(.listen, or: d.listen)
    }

    /// Every default, with the program's models.
    init(folders: Folders) {
        model = folders.builtIn(Self.defaultModel)
        profileModel = folders.builtIn(Self.defaultProfileModel)
    }

    /// Writes `profileModel: null` when there is none (an absent key would read back as the default).
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(profileModel, forKey: .profileModel)
        try c.encode(windows, forKey: .windows)
        try c.encode(speech, forKey: .speech)
        try c.encode(smoothing, forKey: .smoothing)
        try c.encode(listen, forKey: .listen)
    }

    /// A one-line reason the values cannot work, or nil.
    var problem: String? {
        if !(windows.hopSeconds >= 0.02 && windows.hopSeconds <= 10) { return "windows.hopSeconds must be 0.02...10, got \(windows.hopSeconds)" }
        // Memory per job grows with the batch (256 windows: 590 MB, 16: 73 MB) while speed stops gaining.
        if !(1...64).contains(windows.batchWindows) { return "windows.batchWindows must be 1...64, got \(windows.batchWindows)" }
        if !(speech.thresholdDbfs >= -120 && speech.thresholdDbfs <= 0) { return "speech.thresholdDbfs must be -120...0, got \(speech.thresholdDbfs)" }
        if !(speech.minimumVoicedSeconds >= 0 && speech.minimumVoicedSeconds <= 60) { return "speech.minimumVoicedSeconds must be 0...60, got \(speech.minimumVoicedSeconds)" }
        if !(speech.regionRangeDb > 0 && speech.regionRangeDb <= 120) { return "speech.regionRangeDb must be in (0, 120], got \(speech.regionRangeDb)" }
        if !(speech.regionPadSeconds >= 0 && speech.regionPadSeconds <= 5) { return "speech.regionPadSeconds must be 0...5, got \(speech.regionPadSeconds)" }
        if let problem = speech.detector?.problem { return problem }
        if !(1...100).contains(smoothing.windows) { return "smoothing.windows must be 1...100, got \(smoothing.windows)" }
        if !(smoothing.hysteresis >= 0 && smoothing.hysteresis <= 1) { return "smoothing.hysteresis must be 0...1, got \(smoothing.hysteresis)" }
        if listen.device.isEmpty { return "listen.device must not be empty" }
        if !(8_000...192_000).contains(listen.sampleRate) { return "listen.sampleRate must be 8000...192000, got \(listen.sampleRate)" }
        if !(listen.ringSeconds >= 2 && listen.ringSeconds <= 60) { return "listen.ringSeconds must be 2...60, got \(listen.ringSeconds)" }
        return nil
    }
}

/// Options every analysing command shares: where the config and model are, and the values most
/// often tuned. Flags beat config.json.
struct CommonOptions: ParsableArguments {
    @Option(help: "Config file of overrides (default: $EMOTION_MONITOR_CONFIG, ./config.json, one in a folder above the program, /etc/emotion-monitor/config.json; with none, the defaults).")
    var config: String?

    @Option(help: "Model card JSON (default: the config's \"model\").")
    var model: String?

    @Option(help: "Seconds between analysis windows (config windows.hopSeconds).")
    var hop: Double?

    // Unconditional: the value is negative, and would otherwise be taken for a flag.
    @Option(name: .customLong("vad-threshold"), parsing: .unconditional, help: "Energy floor of the voice gate in dBFS, checked before the speech detector (config speech.thresholdDbfs).")
    var vadThreshold: Double?

    @Option(name: .customLong("vad"), help: "Speech detector: silero (Silero VAD) or energy (the energy floor alone; config speech.detector, null for energy).")
    var detector: DetectorChoice?

    @Option(name: .customLong("vad-probability"), help: "Speech probability above which Silero VAD hears speech (config speech.detector.threshold).")
    var vadProbability: Double?

    @Option(name: .customLong("vad-min-speech"), help: "Seconds of speech before Silero VAD declares it (config speech.detector.minimumSpeechSeconds).")
    var vadMinimumSpeech: Double?

    @Option(name: .customLong("vad-min-silence"), help: "Seconds of silence before Silero VAD ends speech (config speech.detector.minimumSilenceSeconds).")
    var vadMinimumSilence: Double?

    enum DetectorChoice: String, ExpressibleByArgument, CaseIterable { case silero, energy }

    /// The configuration with flags applied, validated (the config file's, when one is found, else
    /// the defaults); `modelURL` is --model or the config's model, `profileModelURL` the config's
    /// profile model when no --model is given.
    func resolve() throws -> (Configuration, configURL: URL?, modelURL: URL, profileModelURL: URL?) {
        let url = try configURL()
        let folders = Configuration.Folders(file: url?.deletingLastPathComponent(), program: Configuration.Folders.programFolder())
        var config = Configuration(folders: folders)
        let name = url?.path ?? "the defaults"
        if let url {
            guard let data = FileManager.default.contents(atPath: url.path) else { throw Failure("\(url.path): cannot read config") }
            do {
                let decoder = JSONDecoder()
                decoder.userInfo[Configuration.Folders.key] = folders
                config = try decoder.decode(Configuration.self, from: data)
            } catch {
                throw Failure("\(url.path): invalid config (\(describeDecodingError(error, data: data)))")
            }
            if let problem = config.problem { throw Failure("\(url.path): \(problem)") }
        }
        // Checked apart from the file, so a bad flag is not blamed on config.json.
        if let hop { config.windows.hopSeconds = hop }
        if let vadThreshold { config.speech.thresholdDbfs = vadThreshold }
        switch detector {
        case .energy?: config.speech.detector = nil
        case .silero? where config.speech.detector == nil:
            throw Failure("--vad silero: \(name) names no speech.detector model")
        default: break
        }
        if let vadProbability { config.speech.detector?.threshold = vadProbability }
        if let vadMinimumSpeech { config.speech.detector?.minimumSpeechSeconds = vadMinimumSpeech }
        if let vadMinimumSilence { config.speech.detector?.minimumSilenceSeconds = vadMinimumSilence }
        if let problem = config.problem { throw Failure("--hop or a --vad option: \(problem)") }
        let modelURL = URL(fileURLWithPath: model ?? config.model)
        let profileModelURL = model == nil ? config.profileModel.map { URL(fileURLWithPath: $0) } : nil
        return (config, url, modelURL, profileModelURL)
    }

    /// The config file: --config, $EMOTION_MONITOR_CONFIG, ./config.json, one in a folder above the
    /// program, /etc/emotion-monitor/config.json; nil when there is none (the defaults apply).
    private func configURL() throws -> URL? {
        // Set but empty counts as unset, as shells and systemd units leave it.
        let environment = ProcessInfo.processInfo.environment["EMOTION_MONITOR_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        if let path = config ?? environment {
            guard FileManager.default.fileExists(atPath: path) else { throw Failure("\(path): no such config file") }
            return URL(fileURLWithPath: path)
        }
        let fm = FileManager.default
        if fm.fileExists(atPath: "config.json") { return URL(fileURLWithPath: "config.json") }
        if let above = CommandLine.foldersAbove.map({ $0.appendingPathComponent("config.json") }).first(where: { fm.fileExists(atPath: $0.path) }) {
            return above
        }
        let system = "/etc/emotion-monitor/config.json"
        return fm.fileExists(atPath: system) ? URL(fileURLWithPath: system) : nil
    }

    /// The validated configuration and the model's weights (shared by every analyzer). An output
    /// (`writing`: its flag and path) naming a file the run reads — `reading` (recordings, a profile),
    /// the config, the model card, its weights, the speech detector's model — is refused before
    /// anything is written: a slip on the command line must not destroy an input. `forProfile`: the
    /// run calibrates or uses a speaker profile, so a default model that cannot use one gives way to
    /// the config's `profileModel`, saying so on stderr.
    func loadAnalysis(reading: [String] = [], writing outputs: [(flag: String, path: String?)] = [],
                      forProfile: Bool = false) throws -> (Configuration, ModelWeights) {
        let (config, configURL, defaultURL, profileModelURL) = try resolve()
        // Loaded once here, before any other thread, so that a missing or corrupt detector model is one error, not one per file.
        do { try config.speech.detector.map(VoiceDetector.check) } catch { throw Failure("\(error)") }
        func load(_ url: URL) throws -> ModelWeights {
            do { return try ModelWeights(cardURL: url) } catch let error as ModelError { throw Failure(error.description) }
        }
        var (weights, modelURL) = (try load(defaultURL), defaultURL)
        if forProfile, weights.card.speakerNormalisation == nil, let profileModelURL {
            let chosen = try load(profileModelURL)
            FileHandle.standardError.write(Data("note: a speaker profile needs a speaker-normalised model: using \(chosen.card.name) (\(profileModelURL.path)) instead of \(weights.card.name)\n".utf8))
            (weights, modelURL) = (chosen, profileModelURL)
        }
        let inputs = reading + [configURL?.path, modelURL.path, weights.file].compactMap { $0 } + [config.speech.detector?.model].compactMap { $0 }
        for case let (flag, path?) in outputs {
            if let input = inputs.first(where: { OutputFile.sameFile(path, $0) }) {
                throw Failure("\(flag) \(path): that is \(input), which this run reads; choose another file")
            }
        }
        return (config, weights)
    }
}

/// `config`: what a run would use, as a complete config file.
struct ShowConfiguration: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the settings in effect (the defaults, the config file's overrides and the flags) as JSON.",
        discussion: "The output is a complete config file with absolute paths: save it and keep only the keys you change.")

    @OptionGroup var common: CommonOptions

    func run() throws {
        var (config, url, modelURL, profileModelURL) = try common.resolve()
        (config.model, config.profileModel) = (modelURL.path, profileModelURL?.path)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(config), as: UTF8.self))
        try finishOutput()
        FileHandle.standardError.write(Data("settings: the defaults\(url.map { ", overridden by \($0.path)" } ?? " (no config file)")\n".utf8))
    }
}

extension CommandLine {
    /// The running program's folder and four above it: from .build/<triple>/release/emotion-monitor
    /// up to the checkout, or an install prefix.
    static var foldersAbove: [URL] {
        var dir = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath().deletingLastPathComponent()
        return (0..<5).map { _ in
            defer { dir = dir.deletingLastPathComponent() }
            return dir
        }
    }

    /// The running program's path (from /proc, so a bare name found on $PATH resolves too).
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? arguments[0]
    }
}

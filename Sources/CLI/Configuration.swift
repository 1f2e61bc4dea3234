import ArgumentParser
import Features
import Foundation
import Model
import Output
import Streaming

/// Every default of the program, read from config.json; flags override single values.
/// Threading: a value type, freely shared.
struct Configuration: Codable {
    /// Model card, relative to the config file's folder.
    var model: String
    /// The speaker-normalised model a profile is for, used instead of `model` by calibration and
    /// `--profile` when `model` is not speaker-normalised and no --model is given.
    var profileModel: String?
    var windows: WindowSettings
    var speech: SpeechActivity
    var smoothing: SmoothingSettings
    var listen: ListenSettings

    struct ListenSettings: Codable {
        /// ALSA PCM name.
        var device: String
        /// Asked of the device; it may give its nearest rate, which is resampled to 16 kHz.
        var sampleRate: Int
        /// Ring buffer between capture and analyzer: how far the analyzer may fall behind before samples drop.
        var ringSeconds: Double
        var logFormat: EventFormat
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
    @Option(help: "Config file (default: $EMOTION_MONITOR_CONFIG, ./config.json, or the one installed beside the program).")
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

    /// The configuration with flags applied, validated; `modelURL` is --model or the config's model,
    /// `profileModelURL` the config's profile model when no --model is given.
    func resolve() throws -> (Configuration, configURL: URL, modelURL: URL, profileModelURL: URL?) {
        let url = try configURL()
        var config: Configuration
        guard let data = FileManager.default.contents(atPath: url.path) else { throw Failure("\(url.path): cannot read config") }
        do {
            config = try JSONDecoder().decode(Configuration.self, from: data)
        } catch {
            throw Failure("\(url.path): invalid config (\(describeDecodingError(error, data: data)))")
        }
        if let problem = config.problem { throw Failure("\(url.path): \(problem)") }
        // Checked apart from the file, so a bad flag is not blamed on config.json.
        // The detector's model is named relative to the config file, like the model card.
        if let model = config.speech.detector?.model { config.speech.detector?.model = Self.path(model, relativeTo: url) }
        if let hop { config.windows.hopSeconds = hop }
        if let vadThreshold { config.speech.thresholdDbfs = vadThreshold }
        switch detector {
        case .energy?: config.speech.detector = nil
        case .silero? where config.speech.detector == nil:
            throw Failure("--vad silero: \(url.path) names no speech.detector model")
        default: break
        }
        if let vadProbability { config.speech.detector?.threshold = vadProbability }
        if let vadMinimumSpeech { config.speech.detector?.minimumSpeechSeconds = vadMinimumSpeech }
        if let vadMinimumSilence { config.speech.detector?.minimumSilenceSeconds = vadMinimumSilence }
        if let problem = config.problem { throw Failure("--hop or a --vad option: \(problem)") }
        let modelURL = URL(fileURLWithPath: model ?? Self.path(config.model, relativeTo: url))
        let profileModelURL = model == nil ? config.profileModel.map { URL(fileURLWithPath: Self.path($0, relativeTo: url)) } : nil
        return (config, url, modelURL, profileModelURL)
    }

    /// `path` as written in the config file at `config`: absolute, or relative to the file's folder.
    private static func path(_ path: String, relativeTo config: URL) -> String {
        path.hasPrefix("/") || path.isEmpty ? path : config.deletingLastPathComponent().appendingPathComponent(path).path
    }

    private func configURL() throws -> URL {
        // Set but empty counts as unset, as shells and systemd units leave it.
        let environment = ProcessInfo.processInfo.environment["EMOTION_MONITOR_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        if let path = config ?? environment {
            guard FileManager.default.fileExists(atPath: path) else { throw Failure("\(path): no such config file") }
            return URL(fileURLWithPath: path)
        }
        let fm = FileManager.default
        if fm.fileExists(atPath: "config.json") { return URL(fileURLWithPath: "config.json") }
        // From .build/<triple>/release/emotion-monitor or an install prefix, walk up to the checkout.
        var dir = URL(fileURLWithPath: CommandLine.executablePath).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<5 {
            let candidate = dir.appendingPathComponent("config.json")
            if fm.fileExists(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        if fm.fileExists(atPath: "/etc/emotion-monitor/config.json") { return URL(fileURLWithPath: "/etc/emotion-monitor/config.json") }
        throw Failure("no config.json found: pass --config PATH or set EMOTION_MONITOR_CONFIG")
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
        let inputs = reading + [configURL.path, modelURL.path, weights.file] + [config.speech.detector?.model].compactMap { $0 }
        for case let (flag, path?) in outputs {
            if let input = inputs.first(where: { OutputFile.sameFile(path, $0) }) {
                throw Failure("\(flag) \(path): that is \(input), which this run reads; choose another file")
            }
        }
        return (config, weights)
    }
}

extension CommandLine {
    /// The running program's path (from /proc, so a bare name found on $PATH resolves too).
    static var executablePath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? arguments[0]
    }
}

import Features
import Foundation
import Model

/// How a speaker-normalised model gets the speaker mean it subtracts.
/// Threading: a value type, freely shared.
public enum Normalisation: Sendable {
    /// From a calibration recording of this speaker (`emotion-monitor calibrate`).
    case profile(SpeakerProfile)
    /// A running mean over the speech heard so far in this stream or file, starting from the
    /// population mean.
    case online
    /// The population mean of the training speakers.
    case none

    /// The name events and reports carry ("norm").
    public var name: String {
        switch self {
        case .profile: return "profile"
        case .online: return "online"
        case .none: return "none"
        }
    }
}

/// Turns a `Normalisation` into speaker means for a given model, window by window.
/// Threading: not thread-safe; one per stream.
struct SpeakerMeans {
    let mode: Normalisation
    let model: ModelCard.SpeakerNormalisation?
    let features: FeatureParameters
    private(set) var heard: SpeakerMean
    /// Stream frames already passed to `hear` (in every mode, so callers know what they may discard).
    private(set) var heardFrames = 0

    init(mode: Normalisation, card: ModelCard) {
        self.mode = mode
        model = card.speakerNormalisation
        features = card.features
        heard = SpeakerMean(bands: card.features.melBands)
    }

    /// What events report: a model without speaker normalisation uses none, whatever was asked.
    var name: String { model != nil ? mode.name : Normalisation.none.name }

    /// The mean to use now, given the speech `heard` so far (nil for a model without normalisation).
    var current: [Float]? {
        guard let model else { return nil }
        switch mode {
        case .profile(let profile): return profile.mean
        case .none: return model.populationMean
        case .online: return heard.mean(prior: model.populationMean, priorFrames: model.onlinePriorSeconds / features.frameSeconds)
        }
    }

    /// Adds the speech in the frames of `stream` that end by 16 kHz sample `end` and were not heard
    /// yet to the running mean (online mode only).
    mutating func hear(upTo end: Int, of stream: FeatureStream) {
        let upTo = max(heardFrames, features.frameCount(samples: end))
        defer { heardFrames = upTo }
        guard let model, case .online = mode else { return }
        stream.accumulateSpeech(frames: heardFrames..<upTo, into: &heard, gate: model.speechGate)
    }
}

extension ModelCard.SpeakerNormalisation {
    /// The gate for speaker-mean frames: the model's own, not `--vad-threshold`, because the means it
    /// was trained with were gated at this level.
    public var speechGate: SpeechActivity {
        var gate = SpeechActivity()
        gate.thresholdDbfs = speechThresholdDbfs
        return gate
    }
}

/// A speaker's calibration: their mean log-mel spectrum over about ten seconds of normal speech.
/// Threading: a value type, freely shared.
public struct SpeakerProfile: Codable, Sendable {
    public struct Sex: Codable, Sendable {
        public var label: String
        public var confidence: Double

        public init(label: String, confidence: Double) {
            self.label = label
            self.confidence = confidence
        }
    }

    public var version = 1
    public var mean: [Float]
    /// The front end the mean was computed with: a profile only fits models with the same one.
    public var features: FeatureParameters
    public var speechSeconds: Double
    public var source: String
    public var created: String
    /// The speaker sex the model heard in the calibration speech.
    public var sex: Sex

    public init(mean: [Float], features: FeatureParameters, speechSeconds: Double, source: String, sex: Sex) {
        self.mean = mean
        self.features = features
        self.speechSeconds = speechSeconds
        self.source = source
        self.sex = sex
        created = ISO8601DateFormatter().string(from: Date())
    }

    /// The profile of the speech in `speech`; nil when it holds none.
    public init?(speech: SpeakerMean, features: FeatureParameters, source: String) {
        guard let mean = speech.mean() else { return nil }
        self.init(mean: mean, features: features, speechSeconds: Double(speech.frames) * features.frameSeconds,
                  source: source, sex: Sex(label: "", confidence: 0))
    }

    /// Loads a profile and checks it fits `card`; every problem is a one-line `ProfileError`.
    public static func load(path: String, for card: ModelCard) throws -> SpeakerProfile {
        guard let data = FileManager.default.contents(atPath: path) else { throw ProfileError(path: path, reason: "cannot read it") }
        let profile: SpeakerProfile
        do { profile = try JSONDecoder().decode(SpeakerProfile.self, from: data) } catch {
            throw ProfileError(path: path, reason: "not a valid profile (\(describeDecodingError(error, data: data)))")
        }
        guard profile.version == 1 else {
            throw ProfileError(path: path, reason: "profile version \(profile.version) is not the version 1 this program writes")
        }
        // Log-mel values lie between log(logFloor) and a few tens; seconds come from a calibration.
        guard profile.mean.allSatisfy({ $0.isFinite && abs($0) <= 100 }), profile.speechSeconds.isFinite,
              profile.speechSeconds >= 3, profile.speechSeconds <= 86_400,
              profile.sex.confidence >= 0, profile.sex.confidence <= 1 else {
            throw ProfileError(path: path, reason: "values out of range (mean within +-100, speechSeconds 3...86400, sex confidence 0...1)")
        }
        guard profile.features == card.features else {
            throw ProfileError(path: path, reason: "made with other front-end parameters than the model's; calibrate again")
        }
        guard profile.mean.count == card.features.melBands else {
            throw ProfileError(path: path, reason: "its mean has \(profile.mean.count) values, the model needs \(card.features.melBands)")
        }
        guard card.speakerNormalisation != nil else {
            throw ProfileError(path: path, reason: "the model \(card.name) is not speaker-normalised, so a profile cannot help it")
        }
        return profile
    }

    /// The profile as it is saved (Output's `OutputFile` writes it whole or not at all).
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

public struct ProfileError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): profile \(reason)" }
}

import Features
import Foundation

/// The parts of the model card (Models/*.json) that inference needs. The card also documents the
/// training data, protocol and results; those fields are for people and are not decoded here.
/// Threading: a value type, freely shared.
public struct ModelCard: Codable, Sendable {
    public struct Architecture: Codable, Sendable {
        /// Output channels of each [conv3x3 -> BN -> ReLU -> maxpool 2x2] block.
        public var channels: [Int]
        public var batchNormEpsilon: Double
        /// Pitch statistics the speaker-sex head takes beside the pooled features (Features'
        /// `pitchStatistics`: 2), or 0 for a sex head on spectral features alone.
        public var sexPitchInputs: Int

        enum CodingKeys: String, CodingKey { case channels, batchNormEpsilon, sexPitchInputs }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            channels = try c.decode([Int].self, forKey: .channels)
            batchNormEpsilon = try c.decode(Double.self, forKey: .batchNormEpsilon)
            sexPitchInputs = try c.decodeIfPresent(Int.self, forKey: .sexPitchInputs) ?? 0
        }

        func validate(_ card: ModelCard, path: String) throws {
            guard channels.allSatisfy({ (1...4096).contains($0) }), batchNormEpsilon.isFinite, batchNormEpsilon > 0 else {
                throw ModelError.corrupt(path, reason: "channels must be 1...4096 and batchNormEpsilon positive")
            }
            guard !channels.isEmpty, channels.count < 16, card.windowFrames >= 1 << channels.count,
                  card.features.melBands >= 1 << channels.count else {
                throw ModelError.corrupt(path, reason: "channels, mel bands or window length are empty or too small for the network")
            }
            // The pitch tracker's 40 ms frames and 70-400 Hz lags are defined at 16 kHz (Training/pitch.py).
            guard [0, 2].contains(sexPitchInputs), sexPitchInputs == 0
                    || (card.features.windowLength <= PitchTracker.frameLength && card.features.sampleRate == 16_000) else {
                throw ModelError.corrupt(path, reason: "sexPitchInputs must be 0 or 2, with a 16 kHz front end and a window of at most \(PitchTracker.frameLength) samples")
            }
        }
    }

    /// A pretrained speech encoder under linear heads, in place of the CNN.
    public struct Encoder: Codable, Sendable {
        /// The CTranslate2 Whisper model (setup.sh installs it from pinned wheels): absolute, or relative to the card.
        public var file: String
        /// The pooled hidden states the heads read, from the input to block 0 on: `blocks` + 1, or
        /// + 2 with the final layer norm (the encoder then runs every block it has).
        public var states: Int
    }

    public var name: String
    /// When the model was trained (YYYY-MM-DD), for `--version`.
    public var date: String?
    /// The safetensors file, relative to the card.
    public var weights: String
    public var labels: [String]
    public var sexLabels: [String]
    public var features: FeatureParameters
    /// Length of the analysis window the CNN sees, in seconds.
    public var windowSeconds: Double
    /// The CNN's shape; nil for an encoder model.
    public var architecture: Architecture?
    public var encoder: Encoder?
    /// Present when the model was trained on speaker-normalised features (each frame minus its
    /// speaker's mean log-mel over speech frames, before the window z-norm).
    public var speakerNormalisation: SpeakerNormalisation?

    public struct SpeakerNormalisation: Codable, Sendable {
        /// Mean over the training speakers: the speaker mean to use when nothing better is known.
        public var populationMean: [Float]
        /// Weight of the population mean in the online running mean, in seconds of speech
        /// (chosen by cross-validation: see the card's evaluation).
        public var onlinePriorSeconds: Double
        /// The voice gate for speaker-mean frames, in dBFS: the one the training means were gated with.
        public var speechThresholdDbfs: Double
    }

    /// Pitch statistics the sex head takes (only a CNN's does).
    public var sexPitchInputs: Int { architecture?.sexPitchInputs ?? 0 }

    /// 16 kHz samples in one analysis window.
    public var windowSamples: Int { Int(windowSeconds * Double(features.sampleRate)) }

    /// Feature frames in one analysis window.
    public var windowFrames: Int { features.frameCount(samples: windowSamples) }

    public static func load(from url: URL) throws -> ModelCard {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError.unreadable(url.path, reason: FileManager.default.fileExists(atPath: url.path) ? "permission or I/O error" : "no such file")
        }
        let card: ModelCard
        do { card = try JSONDecoder().decode(ModelCard.self, from: data) } catch {
            throw ModelError.corrupt(url.path, reason: "not a valid model card: \(describeDecodingError(error, data: data))")
        }
        if let problem = card.features.problem { throw ModelError.corrupt(url.path, reason: problem) }
        guard card.windowSeconds >= 0.5 && card.windowSeconds <= 30 else {
            throw ModelError.corrupt(url.path, reason: "windowSeconds must be 0.5...30, got \(card.windowSeconds)")
        }
        guard Set(card.labels).count == card.labels.count, Set(card.sexLabels).count == card.sexLabels.count,
              (card.labels + card.sexLabels).allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" } }) else {
            throw ModelError.corrupt(url.path, reason: "labels must be distinct words (letters, digits, - and _)")
        }
        guard !card.labels.isEmpty, !card.sexLabels.isEmpty else { throw ModelError.corrupt(url.path, reason: "labels are empty") }
        switch (card.architecture, card.encoder) {
        case (let architecture?, nil): try architecture.validate(card, path: url.path)
        case (nil, let encoder?):
            // Whisper's front end is defined at 16 kHz; 30 s is the longest input its position table takes.
            guard card.features.sampleRate == WhisperLogMel.sampleRate, card.windowSeconds <= 30, (2...64).contains(encoder.states) else {
                throw ModelError.corrupt(url.path, reason: "an encoder model needs a 16 kHz front end, a window of at most 30 s and 2...64 states")
            }
        default: throw ModelError.corrupt(url.path, reason: "a model card names either an 'architecture' (the CNN) or an 'encoder', not both")
        }
        if let norm = card.speakerNormalisation {
            guard norm.populationMean.count == card.features.melBands, norm.populationMean.allSatisfy(\.isFinite),
                  norm.onlinePriorSeconds >= 0, norm.onlinePriorSeconds <= 86_400 else {
                throw ModelError.corrupt(url.path, reason: "speakerNormalisation needs \(card.features.melBands) finite populationMean values and onlinePriorSeconds 0...86400")
            }
            // A speech frame is gated on the 10 ms energies it starts with: the hop must be whole 10 ms frames.
            guard (-120...0).contains(norm.speechThresholdDbfs), card.features.hopLength % EnergyMeter.frameLength == 0 else {
                throw ModelError.corrupt(url.path, reason: "speakerNormalisation needs speechThresholdDbfs in -120...0 and a hop of whole 10 ms frames")
            }
        }
        return card
    }
}

/// A short form of a decoding error for one-line messages: which key, what was wrong. `data` (the
/// decoded text) tells a malformed file from a number that does not fit its field, which
/// JSONDecoder reports alike.
public func describeDecodingError(_ error: Error, data: Data? = nil) -> String {
    func path(_ c: DecodingError.Context, _ key: CodingKey? = nil) -> String {
        (c.codingPath + (key.map { [$0] } ?? [])).map(\.stringValue).joined(separator: ".")
    }
    switch error as? DecodingError {
    case .keyNotFound(let key, let c): return "missing '\(path(c, key))'"
    case .typeMismatch(_, let c), .valueNotFound(_, let c): return "wrong type for '\(path(c))'"
    case .dataCorrupted(let c):
        if !c.codingPath.isEmpty { return "bad value for '\(path(c))'" }
        if let data, (try? JSONSerialization.jsonObject(with: data)) != nil {
            return "a number does not fit its field (a fraction where a whole number belongs, or out of range)"
        }
        return "not valid JSON"
    default: return "\(error)"
    }
}

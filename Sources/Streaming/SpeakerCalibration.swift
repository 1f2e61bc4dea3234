import Features
import Foundation
import Model

/// Calibration's live analysis: the speaker mean of the speech heard, until `seconds` of it. Audio
/// is taken in 20 ms steps, so the count stops at `seconds` even when a device delivers in bursts.
/// Threading: not thread-safe; owned by the live monitor's queue, read once the monitor has ended.
public final class SpeakerMeanCollector: LiveAnalysis {
    /// How far calibration has got, after each block of audio.
    public struct Progress: TimedEvent {
        public var speechSeconds: Double
        /// Level of the last 0.1 s heard.
        public var levelDbfs: Double
        public var complete: Bool
        public var analysisSeconds = 0.0
    }

    /// Everything heard up to the end of calibration (for the speaker sex the profile records).
    public let stream: FeatureStream
    public private(set) var mean: SpeakerMean
    public let seconds: Double
    private let features: FeatureParameters
    private let gate: SpeechActivity
    private let step: Int
    private var heardFrames = 0

    /// Gated as the model's training means were (its own speech gate, else `speech`).
    public init(card: ModelCard, inputRate: Int, speech: SpeechActivity, seconds: Double) throws {
        stream = try FeatureStream(for: card, inputRate: inputRate, detector: try speech.makeDetector())
        mean = SpeakerMean(bands: card.features.melBands)
        features = card.features
        gate = card.speakerNormalisation?.speechGate ?? speech
        self.seconds = seconds
        step = max(1, inputRate / 50)
    }

    public var speechSeconds: Double { Double(mean.frames) * features.frameSeconds }
    public var isComplete: Bool { speechSeconds >= seconds }

    public func push(_ samples: ArraySlice<Float>) throws -> [Progress] {
        for start in stride(from: samples.startIndex, to: samples.endIndex, by: step) where !isComplete {
            try stream.push(samples[start..<min(samples.endIndex, start + step)])
            let upTo = features.frameCount(samples: stream.sampleCount)
            stream.accumulateSpeech(frames: heardFrames..<upTo, into: &mean, gate: gate)
            heardFrames = upTo
        }
        return [Progress(speechSeconds: speechSeconds, levelDbfs: EnergyMeter.levelDbfs(stream.energies.suffix(10)), complete: isComplete)]
    }

    /// Nothing more to report: the mean is what was heard.
    public func finish() throws -> [Progress] { [] }
}

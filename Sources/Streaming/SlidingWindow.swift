import Dispatch
import Features
import Foundation
import Model

/// One live analysis step: the window that ended at `end` seconds into the stream.
/// Threading: a value type, freely shared.
public struct LiveEvent: Sendable {
    /// Stream time of the window's end, in seconds (the offset logged).
    public var end: Double
    public var start: Double
    public var voice: Bool
    /// Level of the newest hop, dBFS (for the meter).
    public var levelDbfs: Double
    /// The model's output for this window alone (nil when it carries no voice).
    public var window: Prediction?
    /// Moving average of recent voiced windows and the label shown (with hysteresis).
    public var smoothed: [Float]?
    public var label: Int?
    /// How the speaker mean was obtained ("profile", "online" or "none").
    public var normalisation: String
    /// Seconds the analyzer spent on this hop (set by `LiveMonitor`).
    public var analysisSeconds: Double = 0
}

/// The live analysis: a sliding window over a stream, one event per hop. Only the feature frames
/// each hop adds are computed; windows without voice are reported and not classified. Its windows
/// are exactly those of `ClipAnalyzer`'s segments, so `listen` and `analyze --segments` agree.
/// Threading: not thread-safe; owned by the analyzer queue.
public final class SlidingWindow {
    public let classifier: EmotionClassifier
    public let windows: WindowSettings
    public let speech: SpeechActivity
    private let stream: FeatureStream
    private let detector: VoiceDetector?
    private var smoother: Smoother
    private var means: SpeakerMeans
    private var nextEnd: Int
    private var scratch: [Float] = []
    private let windowSamples: Int, hopSamples: Int
    /// Time spent keeping and reading the speaker mean, so `bench --live` can show what online normalisation costs.
    public private(set) var speakerMeanSeconds = 0.0
    /// Time the voice detector took, for `bench --live`.
    public var voiceDetectorSeconds: Double { detector?.seconds ?? 0 }
    /// How the speaker mean is obtained ("profile", "online" or "none").
    public var normalisation: String { means.name }

    public init(classifier: EmotionClassifier, windows: WindowSettings, speech: SpeechActivity,
                smoothing: SmoothingSettings, normalisation: Normalisation = .online, inputRate: Int) throws {
        self.classifier = classifier
        self.windows = windows
        self.speech = speech
        let card = classifier.card
        detector = try speech.makeDetector()
        stream = try FeatureStream(for: card, inputRate: inputRate, detector: detector)
        smoother = Smoother(settings: smoothing)
        means = SpeakerMeans(mode: normalisation, card: card)
        windowSamples = card.windowSamples
        hopSamples = Int(windows.hopSeconds * Double(card.features.sampleRate))
        nextEnd = windowSamples
    }

    /// Feeds samples at the input rate; returns an event for every window they complete.
    public func push(_ samples: ArraySlice<Float>) throws -> [LiveEvent] {
        try stream.push(samples)
        var events: [LiveEvent] = []
        while stream.sampleCount >= nextEnd {
            events.append(step(end: nextEnd))
            nextEnd += hopSamples
        }
        // Keep what the online speaker mean has not heard yet (a hop longer than the window skips audio).
        stream.discard(before: min(nextEnd - windowSamples, means.heardFrames * classifier.card.features.hopLength))
        return events
    }

    /// Ends the stream; a stream shorter than one window still gets its one (padded) window.
    public func finish() throws -> [LiveEvent] {
        try stream.finish()
        var events = try push([])
        if nextEnd == windowSamples && stream.sampleCount > 0 {
            events.append(step(end: windowSamples))
            nextEnd += hopSamples
        }
        return events
    }

    private func step(end: Int) -> LiveEvent {
        let rate = Double(classifier.card.features.sampleRate)
        let voice = speech.hasVoice(stream.speechEnergies(in: (end - windowSamples)..<end))
        let recent = stream.energies(in: (end - windowSamples)..<end).suffix(hopSamples / EnergyMeter.frameLength)
        // Online: the speech up to this window's end joins the speaker mean (silence never moves it).
        let started = DispatchTime.now().uptimeNanoseconds
        means.hear(upTo: end, of: stream)
        let speakerMean = means.current
        speakerMeanSeconds += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        var event = LiveEvent(end: Double(end) / rate, start: Double(end - windowSamples) / rate, voice: voice,
                              levelDbfs: EnergyMeter.levelDbfs(recent), normalisation: means.name)
        guard voice else {
            smoother.silence()
            return event
        }
        let prediction = classifier.predict([(stream, end - windowSamples)], speakerMeans: speakerMean.map { [$0] } ?? [],
                                            scratch: &scratch)[0]
        let (smoothed, label) = smoother.add(prediction.emotion)
        event.window = prediction
        event.smoothed = smoothed
        event.label = label
        return event
    }
}

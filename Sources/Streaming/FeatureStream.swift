import Foundation
import Features
import Model

/// Audio at the source's rate in, 16 kHz log-mel frames and 10 ms energies out (and the 16 kHz
/// samples, for an encoder model), kept until discarded: the one front end that file analysis,
/// replay and live capture share.
/// Threading: not thread-safe; owned by one analysis at a time.
public final class FeatureStream {
    public let parameters: FeatureParameters
    private let resampler: Resampler
    private let mel: MelSpectrogram
    /// Only for a model whose sex head hears pitch: it costs as much as the log-mel.
    private let pitch: PitchTracker?
    private let meter = EnergyMeter()
    /// Marks speech while the stream runs; released at `finish` for the next stream to take.
    private var detector: VoiceDetector?
    /// With a detector: speech or not per 10 ms frame, the same indices as `energies`.
    private var speech: [Bool] = []
    private let gatesSpeech: Bool
    private var resampled: [Float] = []

    /// Log-mel frames, frame-major; `frames[0]` is stream frame `firstFrame`.
    public private(set) var frames: [Float] = []
    public private(set) var firstFrame = 0
    /// Per log-mel frame (the same indices as `frames`) when tracking pitch: F0 in Hz (0 unvoiced) and level in dBFS.
    public private(set) var f0: [Float] = []
    public private(set) var levels: [Float] = []
    /// 10 ms mean-square energies; `energies[0]` is stream frame `firstEnergy`.
    public private(set) var energies: [Float] = []
    public private(set) var firstEnergy = 0
    /// 16 kHz samples received so far.
    public private(set) var sampleCount = 0
    /// The 16 kHz samples themselves, when kept; `samples[0]` is stream sample `firstSample`.
    public private(set) var samples: [Float] = []
    public private(set) var firstSample = 0
    public let keepsSamples: Bool

    /// `detector` is reset: it now belongs to this stream until the next one takes it.
    public init(parameters: FeatureParameters, inputRate: Int, tracksPitch: Bool, keepsSamples: Bool = false,
                detector: VoiceDetector?) throws {
        self.parameters = parameters
        self.keepsSamples = keepsSamples
        resampler = try Resampler(inputRate: inputRate, outputRate: parameters.sampleRate)
        mel = MelSpectrogram(parameters: parameters)
        pitch = tracksPitch ? PitchTracker(parameters: parameters) : nil
        detector?.reset()
        self.detector = detector
        gatesSpeech = detector != nil
    }

    /// The features `card`'s model reads, with speech marked by `detector`; the samples too for an
    /// encoder model unless `keepsSamples` says otherwise.
    public convenience init(for card: ModelCard, inputRate: Int, detector: VoiceDetector?, keepsSamples: Bool? = nil) throws {
        // Speaker means are gated at the card's own floor: the detector must not skip what is above it.
        if let gate = card.speakerNormalisation?.speechThresholdDbfs, let floor = detector?.quietFloorDbfs, gate < floor {
            detector?.quietFloorDbfs = gate
        }
        try self.init(parameters: card.features, inputRate: inputRate, tracksPitch: card.sexPitchInputs > 0,
                      keepsSamples: keepsSamples ?? (card.encoder != nil), detector: detector)
    }

    /// Adds samples at the input rate; only the frames they complete are computed.
    public func push(_ samples: ArraySlice<Float>) throws {
        resampled.removeAll(keepingCapacity: true)
        try resampler.process(samples, into: &resampled)
        ingest()
    }

    /// Drains the resampler at the end of the stream.
    public func finish() throws {
        resampled.removeAll(keepingCapacity: true)
        try resampler.flush(into: &resampled)
        ingest()
        detector?.finish(into: &speech, firstFrame: firstEnergy)
        detector = nil
    }

    private func ingest() {
        sampleCount += resampled.count
        if keepsSamples { samples += resampled }
        mel.process(resampled, into: &frames)
        pitch?.process(resampled, f0: &f0, levels: &levels)
        meter.process(resampled, into: &energies)
        detector?.process(resampled, into: &speech, firstFrame: firstEnergy, energies: energies)
    }

    /// Forgets frames and energies that start before 16 kHz sample `sample`: bounded memory when live.
    public func discard(before sample: Int) {
        let dropFrames = min(frames.count / parameters.melBands, max(0, sample / parameters.hopLength - firstFrame))
        frames.removeFirst(dropFrames * parameters.melBands)
        f0.removeFirst(min(dropFrames, f0.count))
        levels.removeFirst(min(dropFrames, levels.count))
        firstFrame += dropFrames
        let dropEnergies = min(energies.count, max(0, sample / EnergyMeter.frameLength - firstEnergy))
        energies.removeFirst(dropEnergies)
        firstEnergy += dropEnergies
        speech.removeFirst(min(dropEnergies, speech.count))
        let dropSamples = min(samples.count, max(0, sample - firstSample))
        samples.removeFirst(dropSamples)
        firstSample += dropSamples
    }

    /// Appends the `count` samples from stream sample `start` to `window`; samples the stream does
    /// not hold (before the start, past the end) are zeros, as the training windows were padded.
    public func appendSamples(start: Int, count: Int, to window: inout [Float]) {
        let offset = start - firstSample, leading = min(count, max(0, -offset))
        let lo = min(max(offset, 0), samples.count), hi = min(max(offset + count, lo), samples.count)
        window.append(contentsOf: repeatElement(0, count: leading))
        window += samples[lo..<hi]
        window.append(contentsOf: repeatElement(0, count: count - leading - (hi - lo)))
    }

    /// Appends the `count` frames from stream frame `start` to `window`; frames outside what the
    /// stream holds are silence (log of the floor), like zero-padded audio.
    public func appendWindow(startFrame start: Int, count: Int, to window: inout [Float]) {
        let bands = parameters.melBands
        let held = frames.count / bands
        let silence = Float(log(parameters.logFloor))
        for t in start..<(start + count) {
            let i = t - firstFrame
            if i >= 0 && i < held {
                window.append(contentsOf: frames[(i * bands)..<((i + 1) * bands)])
            } else {
                window.append(contentsOf: repeatElement(silence, count: bands))
            }
        }
    }

    /// The sex head's pitch inputs for the `count` frames from stream frame `start` (see `pitchStatistics`).
    public func pitchStatistics(startFrame start: Int, count: Int) -> [Float] {
        let lo = min(max(start - firstFrame, 0), f0.count), hi = min(max(start + count - firstFrame, lo), f0.count)
        return Features.pitchStatistics(f0: f0[lo..<hi], levels: levels[lo..<hi], frames: count)
    }

    /// The energies of the 10 ms frames inside the 16 kHz sample range `range` that are still held.
    public func energies(in range: Range<Int>) -> ArraySlice<Float> {
        energies[heldEnergies(in: range)]
    }

    /// The same with every frame the detector heard no speech in set to 0: what the voice gate and
    /// speaker means read (the level meter, the plot and a recording's speech region read `energies`).
    public func speechEnergies(in range: Range<Int>) -> [Float] {
        let held = heldEnergies(in: range)
        guard gatesSpeech else { return Array(energies[held]) }
        return held.map { isSpeech(heldFrame: $0) ? energies[$0] : 0 }
    }

    /// Whether the detector heard speech in held 10 ms frame `i` (frames it has not decided yet, at
    /// the live edge, take its current state).
    private func isSpeech(heldFrame i: Int) -> Bool {
        !gatesSpeech || (i < speech.count ? speech[i] : detector?.isSpeaking ?? false)
    }

    /// Every held frame's `speechEnergies`.
    public var speechEnergies: [Float] { speechEnergies(in: (firstEnergy * EnergyMeter.frameLength)..<sampleCount) }

    private func heldEnergies(in range: Range<Int>) -> Range<Int> {
        let lo = min(max(range.lowerBound / EnergyMeter.frameLength - firstEnergy, 0), energies.count)
        let hi = min(max(range.upperBound / EnergyMeter.frameLength - firstEnergy, lo), energies.count)
        return lo..<hi
    }
}

extension EmotionClassifier {
    /// One analysis window: the stream it lies in and its first 16 kHz sample.
    public typealias Window = (stream: FeatureStream, start: Int)

    /// Classifies `windows` (of one stream or several) as one batch: their samples for an encoder
    /// model; else their log-mel frames, with one speaker mean per window for a speaker-normalised
    /// model and pitch statistics for a sex head that hears them.
    public func predict(_ windows: some Collection<Window>, speakerMeans: [[Float]] = [], scratch: inout [Float]) -> [Prediction] {
        scratch.removeAll(keepingCapacity: true)
        if card.encoder != nil {
            for (stream, s) in windows { stream.appendSamples(start: s, count: card.windowSamples, to: &scratch) }
            return scratch.withUnsafeBufferPointer { predict(samples: $0, count: windows.count) }
        }
        let frames = card.windowFrames, hop = card.features.hopLength
        var pitch: [[Float]] = []
        for (stream, s) in windows {
            let first = Int((Double(s) / Double(hop)).rounded(.down))
            stream.appendWindow(startFrame: first, count: frames, to: &scratch)
            if card.sexPitchInputs > 0 { pitch.append(stream.pitchStatistics(startFrame: first, count: frames)) }
        }
        return scratch.withUnsafeBufferPointer { predict(frames: $0, count: windows.count, speakerMeans: speakerMeans, pitch: pitch) }
    }
}

extension FeatureStream {
    /// Adds the speech frames among stream frames `range` that are still held to `mean`. A frame is
    /// speech when the 10 ms energies it starts with pass `gate` (the model's, which its training
    /// means were gated with) and the stream's detector hears speech there.
    public func accumulateSpeech(frames range: Range<Int>, into mean: inout SpeakerMean, gate: SpeechActivity) {
        let bands = parameters.melBands
        let perFrame = max(1, parameters.hopLength / EnergyMeter.frameLength)
        for t in range {
            let i = t - firstFrame, e = t * perFrame - firstEnergy
            guard i >= 0, (i + 1) * bands <= frames.count, e >= 0, e + perFrame <= energies.count,
                  gate.isVoiced(energies[e..<(e + perFrame)]), isSpeech(heldFrame: e) else { continue }
            mean.add(frame: frames[(i * bands)..<((i + 1) * bands)])
        }
    }
}

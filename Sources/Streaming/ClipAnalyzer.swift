import Features
import Foundation
import Model

/// How windows are laid over audio. Threading: a value type, freely shared.
public struct WindowSettings: Codable, Equatable, Sendable {
    /// Step between successive windows: one live event per hop (the encoder costs 90 ms a window).
    public var hopSeconds: Double = 1.0
    /// Windows whose samples and features are gathered for one call of the model (an encoder runs them
    /// `EmotionClassifier.encoderWindows` at a time; the CNN in one sgemm per layer).
    public var batchWindows: Int = 16

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable { case hopSeconds, batchWindows }

    public init(from decoder: Decoder) throws {
        let c = try decoder.settings(CodingKeys.self), d = WindowSettings()
        hopSeconds = try c.value(.hopSeconds, or: d.hopSeconds)
        batchWindows = try c.value(.batchWindows, or: d.batchWindows)
    }
}

/// One analysis window: where it lies, whether it carries voice, and the model's output when it does.
public struct WindowResult: Sendable, Equatable {
    public var start: Double
    public var end: Double
    public var voice: Bool
    public var prediction: Prediction?
}

/// What `analyze` reports for one file.
public struct ClipResult: Sendable {
    public var path: String
    public var duration: Double
    /// Mean probabilities over the windows covering the speech region.
    public var emotion: [Float]
    public var sex: [Float]
    public var speechRegion: Range<Double>
    /// The fixed-grid windows of `listen` (one per hop), when asked for.
    public var segments: [WindowResult]?
    public var nonFiniteSamples: Int
    /// How the speaker mean was obtained ("profile", "online" or "none").
    public var normalisation: String
    /// Log-mel frames and 10 ms energies of the whole file, when asked for (the plot needs them).
    public var frames: [Float]?
    public var energies: [Float]?
}

public enum AnalysisError: Error, CustomStringConvertible {
    case noSpeech(String, speech: SpeechActivity)

    public var description: String {
        switch self {
        case .noSpeech(let path, let speech):
            let floor = "louder than \(Int(speech.thresholdDbfs)) dBFS"
            return "\(path): no speech to classify (" + (speech.detector == nil ? "nothing \(floor); see --vad-threshold)"
                : "Silero VAD heard none in the audio \(floor); see --vad and --vad-threshold)")
        }
    }
}

/// Classifies recorded files: decode in blocks, resample, log-mel, then the windows covering the
/// speech region (the label) and, optionally, the fixed grid of live windows (the segments).
/// Threading: not thread-safe (it owns a classifier); use one per thread.
public final class ClipAnalyzer {
    public let classifier: EmotionClassifier
    public let windows: WindowSettings
    public let speech: SpeechActivity
    /// Seconds spent in the model so far (the rest of `analyze` is decoding and features), and the
    /// windows it classified in them: for `bench`.
    public private(set) var modelSeconds: Double = 0
    public private(set) var modelWindows = 0
    /// Made once and reset per file: loading the model costs 40-70 ms.
    private lazy var detector = Result { try speech.makeDetector() }
    /// Seconds the speech detector took so far (part of the features' time): for `bench`.
    public var voiceDetectorSeconds: Double { ((try? detector.get()) ?? nil)?.seconds ?? 0 }
    /// Frames decoded per read: bounds memory for long files.
    static let blockFrames = 1 << 16

    public init(classifier: EmotionClassifier, windows: WindowSettings, speech: SpeechActivity) {
        self.classifier = classifier
        self.windows = windows
        self.speech = speech
    }

    var card: ModelCard { classifier.card }
    var windowSamples: Int { card.windowSamples }
    var hopSamples: Int { Int(windows.hopSeconds * Double(card.features.sampleRate)) }

    /// Analyses one file. With a speaker-normalised model, `normalisation` says where the speaker
    /// mean comes from; online, the label uses the mean over the whole file's speech and each
    /// segment the speech heard up to its end, as `listen` would. An encoder model's windows are
    /// read in a second decoding of the file, so a long file never has all its samples held.
    public func analyze(path: String, segments: Bool = false, keepFeatures: Bool = false,
                        normalisation: Normalisation = .online) throws -> ClipResult {
        let rereads = card.encoder != nil
        let (stream, file) = try features(path: path, keepsSamples: !rereads)
        var result = try analyze(stream: stream, path: path, segments: segments, keepFeatures: keepFeatures,
                                 normalisation: normalisation, samplesFrom: rereads ? path : nil)
        result.nonFiniteSamples = file.nonFiniteSamples
        return result
    }

    /// The speaker mean over a file's speech frames (for calibration profiles).
    public func speakerMean(path: String) throws -> SpeakerMean {
        try speakerMean(of: features(path: path).0)
    }

    /// The speaker mean over the speech frames of a whole stream (gated as the model's training means were).
    public func speakerMean(of stream: FeatureStream) -> SpeakerMean {
        var mean = SpeakerMean(bands: card.features.melBands)
        stream.accumulateSpeech(frames: 0..<card.features.frameCount(samples: stream.sampleCount), into: &mean,
                                gate: card.speakerNormalisation?.speechGate ?? speech)
        return mean
    }

    /// Decodes a whole file, block by block, into a feature stream (with the samples, for an encoder
    /// model, unless `keepsSamples` is false).
    public func features(path: String, keepsSamples: Bool? = nil) throws -> (FeatureStream, AudioFile) {
        let file = try AudioFile(path: path)
        return (try features(of: file, keepsSamples: keepsSamples), file)
    }

    private func features(of file: AudioFile, keepsSamples: Bool?) throws -> FeatureStream {
        let stream = try FeatureStream(for: card, inputRate: file.sampleRate, detector: try detector.get(), keepsSamples: keepsSamples)
        try decode(file, into: stream) {}
        return stream
    }

    /// Pushes every block of `file` into `stream`, calling `block` after each, then finishes the stream.
    private func decode(_ file: AudioFile, into stream: FeatureStream, each block: () -> Void) throws {
        var samples: [Float] = []
        while true {
            samples.removeAll(keepingCapacity: true)
            guard try file.read(maxFrames: Self.blockFrames, into: &samples) > 0 else { break }
            try stream.push(samples[...])
            block()
        }
        try stream.finish()
    }

    /// Analyses audio already in `stream` (all of it held, as `features(path:)` leaves it), or only its
    /// features when `samplesFrom` names the file an encoder model's window samples are read again from.
    public func analyze(stream: FeatureStream, path: String, segments: Bool = false, keepFeatures: Bool = false,
                        normalisation: Normalisation = .online, samplesFrom file: String? = nil) throws -> ClipResult {
        let plan = try self.plan(stream, path: path, segments: segments, normalisation: normalisation)
        let predictions = try file.map { try classify(rereading: $0, startSamples: plan.starts) }
            ?? classify(plan.starts.map { (stream, $0) }, means: plan.means)
        return finish(plan, predictions: predictions, stream: stream, path: path, keepFeatures: keepFeatures)
    }

    /// Analyses `paths` as `analyze(path:)` does each, except that with an encoder model the windows
    /// of every file up to `batchedFileSeconds` long go through the model in shared batches: the
    /// encoder reads its 80 MB of weights once per batch, and a short clip has one or two windows.
    /// Longer files are analysed one by one (their own windows fill batches, and their samples are
    /// read again rather than held), as is every file for a CNN or a speaker-normalised model.
    public func analyze(paths: [String], segments: Bool = false, keepFeatures: Bool = false,
                        normalisation: (String) -> Normalisation = { _ in .online }) -> [Result<ClipResult, Error>] {
        func alone(_ path: String) -> Result<ClipResult, Error> {
            Result { try analyze(path: path, segments: segments, keepFeatures: keepFeatures, normalisation: normalisation(path)) }
        }
        guard card.encoder != nil, card.speakerNormalisation == nil else { return paths.map(alone) }
        var results = [Result<ClipResult, Error>?](repeating: nil, count: paths.count)
        // The count, not the file: an open AudioFile keeps its decoder and a 64k-frame read buffer.
        var held: [(index: Int, stream: FeatureStream, nonFiniteSamples: Int, plan: Plan)] = []
        for (index, path) in paths.enumerated() {
            do {
                let file = try AudioFile(path: path)
                guard file.duration <= Self.batchedFileSeconds else { results[index] = alone(path); continue }
                let stream = try features(of: file, keepsSamples: true)
                held.append((index, stream, file.nonFiniteSamples,
                             try plan(stream, path: path, segments: segments, normalisation: normalisation(path))))
            } catch {
                results[index] = .failure(error)
            }
        }
        let predictions = classify(held.flatMap { h in h.plan.starts.map { (h.stream, $0) } })
        var next = 0
        for h in held {
            var result = finish(h.plan, predictions: Array(predictions[next..<(next + h.plan.starts.count)]), stream: h.stream,
                                path: paths[h.index], keepFeatures: keepFeatures)
            result.nonFiniteSamples = h.nonFiniteSamples
            results[h.index] = .success(result)
            next += h.plan.starts.count
        }
        return results.map { $0! }
    }

    /// Files per group for `analyze(paths:)` (the pool's `group`): a short clip is one or two windows, and
    /// with a `batchWindows` that is a multiple of four (the default) only a group's last encoder pass may
    /// be part-empty. Sixteen against eight: `analyze --jobs 1` on 120 RAVDESS clips 9.0-11.8 against
    /// 10.4-12.2 s, `evaluate --jobs 2` on SAVEE 248 against 227 MB.
    public static let groupFiles = 4 * EmotionClassifier.encoderWindows

    /// Files at most this long share the model's batches in `analyze(paths:)`, their samples held until
    /// the batch runs (640 kB at most each); a longer file's own windows fill passes (eight at the 1 s hop).
    static let batchedFileSeconds = 10.0

    /// What `analyze` lays over a stream before the model runs.
    struct Plan {
        let region: Range<Int>
        /// The label's windows over the speech region, then the voiced grid windows (segments), by start sample.
        let starts: [Int]
        let labelWindows: Int
        /// One speaker mean per window in `starts`, for a speaker-normalised model.
        let means: [[Float]]?
        let grid: [WindowResult]?
        let normalisation: String
    }

    func plan(_ stream: FeatureStream, path: String, segments: Bool, normalisation: Normalisation) throws -> Plan {
        let n = stream.sampleCount
        // The detector decides whether there is speech to label; the windows lie over the region of every
        // loud frame, where training laid them (Training/frontend.py): laid over the detector's frames,
        // the held-out SAVEE encoder model scored 2.5 points less (docs/accuracy.md).
        guard speech.hasVoice(stream.speechEnergies), let region = speech.region(energies: stream.energies, sampleCount: n) else {
            throw AnalysisError.noSpeech(path, speech: speech)
        }
        let starts = regionWindowStarts(region, sampleCount: n)
        var means = SpeakerMeans(mode: normalisation, card: card)
        means.hear(upTo: n, of: stream)
        let grid = segments ? gridWindows(stream, normalisation: normalisation) : nil
        return Plan(region: region, starts: starts + (grid?.starts ?? []), labelWindows: starts.count,
                    means: means.current.map { Array(repeating: $0, count: starts.count) + (grid?.means ?? []) },
                    grid: grid?.windows, normalisation: means.name)
    }

    /// The result from the model's predictions for `plan.starts`: the label from the mean over its
    /// label windows, and each voiced grid window's own.
    func finish(_ plan: Plan, predictions: [Prediction], stream: FeatureStream, path: String, keepFeatures: Bool) -> ClipResult {
        let labelPredictions = predictions.prefix(plan.labelWindows)
        let rate = Double(card.features.sampleRate)
        var result = ClipResult(
            path: path, duration: Double(stream.sampleCount) / rate,
            emotion: meanProbabilities(labelPredictions.map(\.emotion)), sex: meanProbabilities(labelPredictions.map(\.sex)),
            speechRegion: Double(plan.region.lowerBound) / rate..<Double(plan.region.upperBound) / rate,
            segments: nil, nonFiniteSamples: 0, normalisation: plan.normalisation)
        if var windows = plan.grid {
            var next = predictions.dropFirst(plan.labelWindows).makeIterator()
            for i in windows.indices where windows[i].voice { windows[i].prediction = next.next() }
            result.segments = windows
        }
        if keepFeatures { (result.frames, result.energies) = (stream.frames, stream.energies) }
        return result
    }

    /// Start samples of the windows covering `region` with the configured hop; a region shorter than
    /// a window gets one window centred on it (kept inside the file where the file is long enough).
    /// This is the protocol the model's accuracy was measured with (Training/frontend.py).
    func regionWindowStarts(_ region: Range<Int>, sampleCount n: Int) -> [Int] {
        let w = windowSamples, h = hopSamples
        if region.count <= w {
            let centred = (region.lowerBound + region.upperBound) / 2 - w / 2
            return [min(max(centred, min(0, n - w)), max(0, n - w))]
        }
        let count = 1 + (region.count - w + h - 1) / h
        return (0..<count).map { min(region.lowerBound + $0 * h, region.upperBound - w) }
    }

    /// The windows `listen` classifies, not yet classified: one ending at every hop once a full window
    /// is available (a stream shorter than a window gets one, padded), and for a speaker-normalised
    /// model the mean heard up to each voiced one's end; `starts` are the voiced ones' start samples.
    func gridWindows(_ stream: FeatureStream, normalisation: Normalisation) -> (windows: [WindowResult], starts: [Int], means: [[Float]]) {
        let w = windowSamples, h = hopSamples, rate = Double(card.features.sampleRate)
        let ends = stream.sampleCount < w ? [w] : Array(stride(from: w, through: stream.sampleCount, by: h))
        var windows: [WindowResult] = [], starts: [Int] = [], windowMeans: [[Float]] = []
        var means = SpeakerMeans(mode: normalisation, card: card)
        for end in ends {
            let voice = speech.hasVoice(stream.speechEnergies(in: (end - w)..<end))
            windows.append(WindowResult(start: Double(end - w) / rate, end: Double(end) / rate, voice: voice, prediction: nil))
            means.hear(upTo: end, of: stream)
            guard voice else { continue }
            starts.append(end - w)
            if let mean = means.current { windowMeans.append(mean) }
        }
        return (windows, starts, windowMeans)
    }

    /// Runs the model over `windows` (of one stream or several), in batches; `means` holds one speaker
    /// mean per window for a speaker-normalised model. Counts its time in `modelSeconds`.
    func classify(_ windows: [EmotionClassifier.Window], means: [[Float]]? = nil) -> [Prediction] {
        var scratch: [Float] = [], out: [Prediction] = []
        let size = max(1, self.windows.batchWindows)
        for chunk in stride(from: 0, to: windows.count, by: size) {
            let batch = chunk..<min(chunk + size, windows.count)
            let t0 = DispatchTime.now().uptimeNanoseconds
            out += classifier.predict(windows[batch], speakerMeans: means.map { Array($0[batch]) } ?? [], scratch: &scratch)
            modelSeconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            modelWindows += batch.count
        }
        return out
    }

    /// The same for an encoder model whose samples were not kept (an hour's take 230 MB): decodes
    /// `path` again and classifies each batch of windows once its samples have arrived, holding only
    /// the samples from the earliest window still to come.
    func classify(rereading path: String, startSamples: [Int]) throws -> [Prediction] {
        let order = startSamples.indices.sorted { startSamples[$0] < startSamples[$1] }
        var out = [Prediction?](repeating: nil, count: startSamples.count)
        let file = try AudioFile(path: path)
        let stream = try FeatureStream(for: card, inputRate: file.sampleRate, detector: nil, keepsSamples: true)
        let size = max(1, windows.batchWindows)
        var next = 0
        func classifyReady(final: Bool) {
            while next < order.count {
                let batch = order[next..<min(next + size, order.count)]
                guard final || startSamples[batch.last!] + windowSamples <= stream.sampleCount else { break }
                for (i, p) in zip(batch, classify(batch.map { (stream, startSamples[$0]) })) { out[i] = p }
                next = batch.endIndex
            }
            stream.discard(before: next < order.count ? startSamples[order[next]] : stream.sampleCount)
        }
        try decode(file, into: stream) { classifyReady(final: false) }
        classifyReady(final: true)
        return out.map { $0! }
    }
}

/// Element-wise mean of probability vectors.
public func meanProbabilities(_ vectors: [[Float]]) -> [Float] {
    guard let first = vectors.first else { return [] }
    var sum = [Float](repeating: 0, count: first.count)
    for v in vectors { for i in v.indices { sum[i] += v[i] } }
    return sum.map { $0 / Float(vectors.count) }
}

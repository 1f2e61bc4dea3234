import CSherpaOnnx
import Foundation

/// Silero VAD's decision, per 10 ms frame of a 16 kHz stream: is it speech? Noise, hum, tones and
/// fans are loud enough for the energy gate but not speech to this network.
///
/// Runs the model through sherpa-onnx's detector in its 32 ms steps. The detector declares speech
/// only after `minimumSpeechSeconds` of it, so the frames before each onset are marked speech
/// afterwards; it ends speech after `minimumSilenceSeconds` of silence. Every step goes through the
/// model, silent ones too, with one exception: skipping quiet ones saved a third of its cost on RAVDESS but cost the
/// model its context (17 clips of 1200 heard as no speech instead of 10). The exception is long
/// stretches below the energy floor (`quietFloorDbfs`), where no frame can be voiced whatever the model
/// says: once the model has heard `settleSteps` of them without speech, further ones are held back,
/// and only the last `prerollSteps` before the next audible step are run, so the model meets the
/// speech that follows with the state and context of quiet just before it. The caller owns the flags
/// (beside its energies); frames not decided yet (up to a burst, 512 ms, at the live edge) take `isSpeaking`.
/// Threading: not thread-safe; one stream at a time (`reset` between them), on one thread at a time.
public final class VoiceDetector {
    /// What config.json's `speech.detector` holds.
    public struct Settings: Codable, Equatable, Sendable {
        /// silero_vad.onnx (v4 or v5 and later), where setup.sh installs it; relative paths are resolved by the caller.
        public var model = "/usr/local/share/emotion-monitor/silero_vad.onnx"
        /// Speech probability above which a 32 ms step is speech.
        public var threshold = 0.3
        public var minimumSpeechSeconds = 0.05
        public var minimumSilenceSeconds = 0.25

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable { case model, threshold, minimumSpeechSeconds, minimumSilenceSeconds }

        public init(from decoder: Decoder) throws {
            let c = try decoder.settings(CodingKeys.self), d = Settings()
            model = try c.value(.model, or: d.model)
            threshold = try c.value(.threshold, or: d.threshold)
            minimumSpeechSeconds = try c.value(.minimumSpeechSeconds, or: d.minimumSpeechSeconds)
            minimumSilenceSeconds = try c.value(.minimumSilenceSeconds, or: d.minimumSilenceSeconds)
        }

        /// A one-line reason these cannot work, or nil (the model file is checked when loaded).
        public var problem: String? {
            if model.isEmpty { return "speech.detector.model must name silero_vad.onnx" }
            if !(threshold > 0 && threshold < 1) { return "speech.detector.threshold must be a probability in (0, 1), got \(threshold)" }
            if !(minimumSpeechSeconds >= 0 && minimumSpeechSeconds <= 5) { return "speech.detector.minimumSpeechSeconds must be 0...5, got \(minimumSpeechSeconds)" }
            if !(minimumSilenceSeconds >= 0 && minimumSilenceSeconds <= 5) { return "speech.detector.minimumSilenceSeconds must be 0...5, got \(minimumSilenceSeconds)" }
            return nil
        }
    }

    public enum LoadError: Error, CustomStringConvertible {
        case unusable(String, reason: String)
        public var description: String {
            switch self { case let .unusable(path, reason): return "\(path): voice-activity model \(reason)" }
        }
    }

    /// The model's step at 16 kHz (Silero v5 requires it), and the steps run together (512 ms).
    static let step = 512, burst = 16
    /// Quiet steps the model runs before quiet is skipped (20 s: its state takes 10-15 s of silence to
    /// settle; with 10 s, speech after a minute of silence was heard 0.19 s later), and those it runs
    /// again before the next audible step (0.5 s of the quiet just before).
    static let settleSteps = 640, prerollSteps = 16
    public let settings: Settings
    /// Frames whose mean square stays below this many dBFS cannot be voiced (the lowest energy
    /// floor the caller gates with); nil runs the model on every step.
    public var quietFloorDbfs: Double? {
        get { quietFloor < 0 ? nil : 10 * log10(Double(quietFloor)) }
        set { quietFloor = newValue.map { Float(pow(10, $0 / 10)) } ?? -1 }
    }
    /// As a mean square; -1: none.
    private var quietFloor: Float = -1
    /// Quiet steps in a row while not in speech.
    private var quietRun = 0
    /// The quiet steps held back, a ring of `prerollSteps`: `heldCount` from slot `heldFirst`.
    private var preroll = [Float](repeating: 0, count: prerollSteps * step)
    private var heldFirst = 0, heldCount = 0
    /// Steps never run through the model (for `bench` and tests).
    public private(set) var skippedSteps = 0
    private let detector: OpaquePointer
    private var pending: [Float] = []
    /// 16 kHz samples through the model.
    private var processed = 0
    /// Whether the model is in speech after the last step.
    public private(set) var isSpeaking = false
    /// Seconds the model took, for `bench --live`.
    public private(set) var seconds: Double = 0

    /// `quietFloorDbfs`: see the property.
    public convenience init(settings: Settings, quietFloorDbfs: Double? = nil) throws {
        try self.init(settings: settings, quiet: false)
        self.quietFloorDbfs = quietFloorDbfs
    }

    /// Loads the model once with sherpa-onnx's own messages silenced, so that a bad file is the one-line
    /// error thrown here. Only before other threads run: it points the whole process's stderr away.
    public static func check(_ settings: Settings) throws { _ = try VoiceDetector(settings: settings, quiet: true) }

    private init(settings: Settings, quiet: Bool) throws {
        self.settings = settings
        let path = settings.model
        var info = stat()
        guard stat(path, &info) == 0 else { throw LoadError.unusable(path, reason: "not found (setup.sh installs it; speech.detector.model names it)") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw LoadError.unusable(path, reason: "is not a regular file") }
        guard access(path, R_OK) == 0 else { throw LoadError.unusable(path, reason: "is not readable") }
        var config = SherpaOnnxVadModelConfig()
        config.sample_rate = 16_000
        config.num_threads = 1
        config.silero_vad.threshold = Float(settings.threshold)
        config.silero_vad.min_speech_duration = Float(settings.minimumSpeechSeconds)
        config.silero_vad.min_silence_duration = Float(settings.minimumSilenceSeconds)
        config.silero_vad.window_size = Int32(Self.step)
        // Past this the detector raises its threshold to split a segment; irrelevant to per-frame flags.
        config.silero_vad.max_speech_duration = 20
        let created: OpaquePointer? = path.withCString { model in
            "cpu".withCString { provider in
                config.silero_vad.model = model
                config.provider = provider
                // sherpa-onnx explains a bad file on stderr in several lines of its own: the error below says it in one.
                return quiet ? withStandardErrorSilenced { SherpaOnnxCreateVoiceActivityDetector(&config, 25) }
                    : SherpaOnnxCreateVoiceActivityDetector(&config, 25)
            }
        }
        guard let created else { throw LoadError.unusable(path, reason: "is not a Silero VAD ONNX model (corrupt or another kind)") }
        detector = created
    }

    deinit { SherpaOnnxDestroyVoiceActivityDetector(detector) }

    /// Starts a new stream: the model's state forgotten (loading the model again would cost 40-70 ms per file).
    public func reset() {
        SherpaOnnxVoiceActivityDetectorReset(detector)
        while SherpaOnnxVoiceActivityDetectorEmpty(detector) == 0 { SherpaOnnxVoiceActivityDetectorPop(detector) }
        pending.removeAll(keepingCapacity: true)
        (processed, isSpeaking, quietRun, heldFirst, heldCount, skippedSteps) = (0, false, 0, 0, 0, 0)
    }

    /// Runs the model over more 16 kHz samples, appending a flag per completed 10 ms frame to `flags`
    /// (whose first element is stream frame `firstFrame`) and marking the frames before an onset.
    /// `energies`: the 10 ms mean squares so far, indexed like `flags` (what tells quiet steps).
    public func process<C: Collection>(_ samples: C, into flags: inout [Bool], firstFrame: Int, energies: [Float]) where C.Element == Float {
        pending.append(contentsOf: samples)
        // Steps run in bursts: one at a time, as live audio arrives, each cost several times as much
        // (measured: 20 ms of model time per second of audio, against 3.4 in bursts).
        guard pending.count >= Self.burst * Self.step else { return }
        var steps = pending.count / Self.step
        // A step is taken once every frame touching it is measured (the last one may wait for the next samples).
        let measured = (firstFrame + energies.count) * EnergyMeter.frameLength
        let firstStart = processed + heldCount * Self.step
        while quietFloor >= 0, steps > 0, ((firstStart + steps * Self.step - 1) / EnergyMeter.frameLength + 1) * EnergyMeter.frameLength > measured {
            steps -= 1
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        pending.withUnsafeBufferPointer { buf in
            for s in 0..<steps { take(buf.baseAddress! + s * Self.step, into: &flags, firstFrame: firstFrame, energies: energies) }
        }
        pending.removeFirst(steps * Self.step)
        seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    /// One step: run, or held back when quiet has lasted (the oldest held one then skipped).
    private func take(_ samples: UnsafePointer<Float>, into flags: inout [Bool], firstFrame: Int, energies: [Float]) {
        if !isSpeaking && isQuiet(from: processed + heldCount * Self.step, firstFrame: firstFrame, energies: energies) {
            quietRun += 1
            if quietRun > Self.settleSteps {
                if heldCount == Self.prerollSteps {
                    heldFirst = (heldFirst + 1) % Self.prerollSteps
                    heldCount -= 1
                    skippedSteps += 1
                    advance(into: &flags, firstFrame: firstFrame)
                }
                let slot = (heldFirst + heldCount) % Self.prerollSteps * Self.step
                preroll.withUnsafeMutableBufferPointer { $0.baseAddress!.advanced(by: slot).update(from: samples, count: Self.step) }
                heldCount += 1
                return
            }
        } else {
            quietRun = 0
        }
        runHeld(into: &flags, firstFrame: firstFrame)
        run(samples, into: &flags, firstFrame: firstFrame)
    }

    /// Whether every 10 ms frame that touches the step from 16 kHz sample `start` is known and below the quiet floor.
    private func isQuiet(from start: Int, firstFrame: Int, energies: [Float]) -> Bool {
        let frames = (start / EnergyMeter.frameLength - firstFrame)...((start + Self.step - 1) / EnergyMeter.frameLength - firstFrame)
        return frames.lowerBound >= 0 && frames.upperBound < energies.count && frames.allSatisfy { energies[$0] < quietFloor }
    }

    /// Runs the held quiet steps: the model hears the quiet just before what follows.
    private func runHeld(into flags: inout [Bool], firstFrame: Int) {
        guard heldCount > 0 else { return }
        preroll.withUnsafeBufferPointer { buf in
            for i in 0..<heldCount { run(buf.baseAddress! + (heldFirst + i) % Self.prerollSteps * Self.step, into: &flags, firstFrame: firstFrame) }
        }
        (heldFirst, heldCount) = (0, 0)
    }

    /// Runs the model over what is left at the end of a stream (zero-padded to whole steps).
    public func finish(into flags: inout [Bool], firstFrame: Int) {
        runHeld(into: &flags, firstFrame: firstFrame)
        guard !pending.isEmpty else { return }
        pending += repeatElement(0, count: (Self.step - pending.count % Self.step) % Self.step)
        pending.withUnsafeBufferPointer { buf in
            for s in 0..<(buf.count / Self.step) { run(buf.baseAddress! + s * Self.step, into: &flags, firstFrame: firstFrame) }
        }
        pending.removeAll()
    }

    private func run(_ samples: UnsafePointer<Float>, into flags: inout [Bool], firstFrame: Int) {
        SherpaOnnxVoiceActivityDetectorAcceptWaveform(detector, samples, Int32(Self.step))
        // Finished segments carry a copy of their audio, which is not needed here.
        while SherpaOnnxVoiceActivityDetectorEmpty(detector) == 0 {
            SherpaOnnxDestroySpeechSegment(SherpaOnnxVoiceActivityDetectorFront(detector))
            SherpaOnnxVoiceActivityDetectorPop(detector)
        }
        let now = SherpaOnnxVoiceActivityDetectorDetected(detector) != 0
        if now && !isSpeaking {
            // The onset was `minimumSpeechSeconds` (and a step) ago.
            let back = Int(settings.minimumSpeechSeconds * 16_000) + Self.step
            let from = max(0, (processed - back) / EnergyMeter.frameLength - firstFrame)
            if from < flags.count { for i in from..<flags.count { flags[i] = true } }
        }
        isSpeaking = now
        advance(into: &flags, firstFrame: firstFrame)
    }

    /// One step further: the frames it completes take the model's current state.
    private func advance(into flags: inout [Bool], firstFrame: Int) {
        processed += Self.step
        while (firstFrame + flags.count + 1) * EnergyMeter.frameLength <= processed { flags.append(isSpeaking) }
    }
}

/// Runs `body` with file descriptor 2 pointed at /dev/null, then restores it.
private func withStandardErrorSilenced<T>(_ body: () -> T) -> T {
    fflush(nil)
    let saved = dup(2), null = open("/dev/null", O_WRONLY)
    guard saved >= 0, null >= 0 else { return body() }
    dup2(null, 2)
    close(null)
    defer {
        fflush(nil)
        dup2(saved, 2)
        close(saved)
    }
    return body()
}

import CSherpaOnnx
import Foundation

/// Silero VAD's decision, per 10 ms frame of a 16 kHz stream: is it speech? Noise, hum, tones and
/// fans are loud enough for the energy gate but not speech to this network.
///
/// Runs the model through sherpa-onnx's detector in its 32 ms steps. The detector declares speech
/// only after `minimumSpeechSeconds` of it, so the frames before each onset are marked speech
/// afterwards; it ends speech after `minimumSilenceSeconds` of silence. Every step goes through the
/// model, silent ones too: skipping those saved a third of its cost on RAVDESS but cost the model its
/// context (17 clips of 1200 heard as no speech instead of 10). The caller owns the flags
/// (beside its energies); frames not decided yet (up to a burst, 512 ms, at the live edge) take `isSpeaking`.
/// Threading: not thread-safe; one stream at a time (`reset` between them), on one thread at a time.
public final class VoiceDetector {
    /// What config.json's `speech.detector` holds.
    public struct Settings: Codable, Equatable, Sendable {
        /// silero_vad.onnx (v4 or v5 and later); relative paths are resolved by the caller.
        public var model: String
        /// Speech probability above which a 32 ms step is speech.
        public var threshold: Double
        public var minimumSpeechSeconds: Double
        public var minimumSilenceSeconds: Double

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
    public let settings: Settings
    private let detector: OpaquePointer
    private var pending: [Float] = []
    /// 16 kHz samples through the model.
    private var processed = 0
    /// Whether the model is in speech after the last step.
    public private(set) var isSpeaking = false
    /// Seconds the model took, for `bench --live`.
    public private(set) var seconds: Double = 0

    public convenience init(settings: Settings) throws { try self.init(settings: settings, quiet: false) }

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
        (processed, isSpeaking) = (0, false)
    }

    /// Runs the model over more 16 kHz samples, appending a flag per completed 10 ms frame to `flags`
    /// (whose first element is stream frame `firstFrame`) and marking the frames before an onset.
    public func process<C: Collection>(_ samples: C, into flags: inout [Bool], firstFrame: Int) where C.Element == Float {
        pending.append(contentsOf: samples)
        // Steps run in bursts: one at a time, as live audio arrives, each cost several times as much
        // (measured: 20 ms of model time per second of audio, against 3.4 in bursts).
        guard pending.count >= Self.burst * Self.step else { return }
        let steps = pending.count / Self.step
        let t0 = DispatchTime.now().uptimeNanoseconds
        pending.withUnsafeBufferPointer { buf in
            for s in 0..<steps { run(buf.baseAddress! + s * Self.step, into: &flags, firstFrame: firstFrame) }
        }
        pending.removeFirst(steps * Self.step)
        seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }

    /// Runs the model over what is left at the end of a stream (zero-padded to whole steps).
    public func finish(into flags: inout [Bool], firstFrame: Int) {
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
        processed += Self.step
        while (firstFrame + flags.count + 1) * EnergyMeter.frameLength <= processed { flags.append(now) }
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

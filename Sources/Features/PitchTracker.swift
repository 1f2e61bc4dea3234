import CFFTW
import Foundation

/// Streaming pitch, one value per log-mel frame, for the speaker-sex head (Training/pitch.py is the
/// reference). Spectral cues alone call women's calm speech male on unfamiliar voices and pitch alone
/// calls aroused men female; the model weighs both.
///
/// Frame t covers the 640 samples that end where log-mel frame t ends (zeros before the stream
/// starts). Its Hann-windowed autocorrelation (FFT 1024, so no wrap-around), divided by the window's
/// own, peaks at the period: the highest peak for 70-400 Hz. A frame is voiced when that peak is at
/// least 0.5 and the frame is louder than -60 dBFS.
/// Threading: not thread-safe; one stream per instance (instances may run on different threads).
public final class PitchTracker {
    public static let frameLength = 640
    static let fftSize = 1024
    static let voicedPeak: Float = 0.5
    static let silenceDbfs: Float = -60
    private let hop: Int
    private let minLag: Int, maxLag: Int
    private let sampleRate: Float
    private let window: [Float]
    /// The window's own autocorrelation over lags 0...maxLag, normalised to 1 at lag 0.
    private let windowCorrelation: [Float]
    private let windowEnergy: Float
    private let fftInput: UnsafeMutablePointer<Float>
    private let spectrum: UnsafeMutablePointer<fftwf_complex>
    private let forward: fftwf_plan, inverse: fftwf_plan
    private var pending: [Float]

    /// The Hann window, its autocorrelation at every lag (normalised to 1 at lag 0) and its energy:
    /// computed once per process, since a tracker is made per file and this took 2 % of `analyze`.
    private static let tables: (window: [Float], correlation: [Float], energy: Float) = {
        let n = frameLength
        let w = (0..<n).map { 0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(n)) }
        let zero = w.reduce(0) { $0 + $1 * $1 }
        let correlation = (0..<n).map { k in Float((0..<(n - k)).reduce(0) { $0 + w[$1] * w[$1 + k] } / zero) }
        return (w.map(Float.init), correlation, Float(zero))
    }()

    public init(parameters: FeatureParameters) {
        precondition(parameters.windowLength <= Self.frameLength, "the pitch frame ends where the log-mel frame ends")
        hop = parameters.hopLength
        sampleRate = Float(parameters.sampleRate)
        minLag = parameters.sampleRate / 400
        maxLag = parameters.sampleRate / 70
        window = Self.tables.window
        windowCorrelation = Array(Self.tables.correlation[0...maxLag])
        windowEnergy = Self.tables.energy
        pending = [Float](repeating: 0, count: Self.frameLength - parameters.windowLength)
        fftInput = .allocate(capacity: Self.fftSize)
        fftInput.initialize(repeating: 0, count: Self.fftSize)
        spectrum = .allocate(capacity: Self.fftSize / 2 + 1)
        fftwPlannerLock.lock()
        forward = fftwf_plan_dft_r2c_1d(Int32(Self.fftSize), fftInput, spectrum, fftwPlanFlags)
        inverse = fftwf_plan_dft_c2r_1d(Int32(Self.fftSize), spectrum, fftInput, fftwPlanFlags)
        fftwPlannerLock.unlock()
    }

    deinit {
        fftwPlannerLock.lock()
        fftwf_destroy_plan(forward)
        fftwf_destroy_plan(inverse)
        fftwPlannerLock.unlock()
        fftInput.deallocate()
        spectrum.deallocate()
    }

    /// Appends, for each log-mel frame that `samples` completes, its F0 in Hz (0 when unvoiced) to
    /// `f0` and its level in dBFS to `levels`.
    public func process<C: Collection>(_ samples: C, f0: inout [Float], levels: inout [Float]) where C.Element == Float {
        pending.append(contentsOf: samples)
        guard pending.count >= Self.frameLength else { return }
        let count = 1 + (pending.count - Self.frameLength) / hop
        pending.withUnsafeBufferPointer { buf in
            for t in 0..<count {
                let (pitch, level) = analyse(buf.baseAddress! + t * hop)
                f0.append(pitch)
                levels.append(level)
            }
        }
        pending.removeFirst(count * hop)
    }

    private func analyse(_ samples: UnsafePointer<Float>) -> (f0: Float, level: Float) {
        var direct: Float = 0
        for i in 0..<Self.frameLength {
            fftInput[i] = samples[i] * window[i]
            direct += fftInput[i] * fftInput[i]
        }
        // Lag 0 is the frame's energy: a frame clearly below the silence floor is unvoiced whatever
        // its peak, so its two FFTs (half of RAVDESS's frames) are skipped. The 1 dB margin keeps the
        // FFT's rounding from ever deciding a frame the other way.
        let quiet = 10 * log10(max(direct, 1e-20) / windowEnergy)
        if quiet < Self.silenceDbfs - 1 { return (0, quiet) }
        for i in Self.frameLength..<Self.fftSize { fftInput[i] = 0 }
        fftwf_execute(forward)
        for k in 0...(Self.fftSize / 2) {
            let (re, im) = spectrum[k]
            spectrum[k] = (re * re + im * im, 0)
        }
        fftwf_execute(inverse)  // unnormalised: every lag scaled by fftSize, which the ratios cancel
        let energy = fftInput[0]
        let level = 10 * log10(max(energy / Float(Self.fftSize), 1e-20) / windowEnergy)
        var peak = -Float.infinity, lag = minLag
        for k in minLag...maxLag {
            let r = fftInput[k] / max(energy, 1e-20) / windowCorrelation[k]
            if r > peak { (peak, lag) = (r, k) }
        }
        return (peak >= Self.voicedPeak && level >= Self.silenceDbfs ? sampleRate / Float(lag) : 0, level)
    }
}

/// The sex head's pitch inputs for one window, from its frames' F0 and levels (Training/pitch.py's
/// `stats`): the median of log2(F0 / 150 Hz) over voiced frames within 20 dB of the window's loudest
/// (the lower middle value; 0 when none), and the fraction of the window's frames that are such.
/// Frames outside what was heard count as silence.
public func pitchStatistics(f0: ArraySlice<Float>, levels: ArraySlice<Float>, frames: Int) -> [Float] {
    let loudest = levels.max() ?? -Float.infinity
    var logs: [Float] = []
    for (f, level) in zip(f0, levels) where f > 0 && level >= loudest - 20 { logs.append(log2(f / 150)) }
    guard !logs.isEmpty else { return [0, 0] }
    logs.sort()
    return [logs[(logs.count - 1) / 2], Float(logs.count) / Float(max(frames, 1))]
}

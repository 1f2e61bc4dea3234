/// The front end's parameters. The model card carries the values the model was trained with;
/// `Training/frontend.py` is the reference implementation of the same computation.
/// Threading: a value type, freely shared.
public struct FeatureParameters: Codable, Equatable, Sendable {
    public var sampleRate: Int = 16_000
    /// Analysis window (Hann, periodic) and hop, in samples.
    public var windowLength: Int = 400
    public var hopLength: Int = 320
    public var fftSize: Int = 512
    public var melBands: Int = 40
    public var fmin: Double = 50
    public var fmax: Double = 8_000
    /// Added to the mel power before the log, so silence gives log(floor) rather than -inf.
    public var logFloor: Double = 1e-6

    public init() {}

    /// Feature frames in a signal of `samples` samples (no centring, no padding).
    public func frameCount(samples: Int) -> Int {
        samples < windowLength ? 0 : 1 + (samples - windowLength) / hopLength
    }

    /// Seconds from one frame to the next.
    public var frameSeconds: Double { Double(hopLength) / Double(sampleRate) }

    /// A one-line reason these parameters cannot be computed, or nil when they can.
    public var problem: String? {
        if sampleRate < 8_000 || sampleRate > 192_000 { return "sample rate \(sampleRate) is outside 8000...192000" }
        if fftSize < 16 || fftSize > 65_536 || fftSize & (fftSize - 1) != 0 { return "FFT size \(fftSize) must be a power of two, 16...65536" }
        if windowLength < 16 || windowLength > fftSize { return "window length \(windowLength) must be 16...fftSize (\(fftSize))" }
        if hopLength < sampleRate / 1000 || hopLength > windowLength { return "hop length \(hopLength) must be 1 ms...windowLength" }
        if melBands < 1 || melBands > fftSize / 2 { return "mel bands \(melBands) must be 1...\(fftSize / 2)" }
        if !(fmin >= 0 && fmin < fmax && fmax <= Double(sampleRate) / 2) { return "mel range \(fmin)...\(fmax) Hz is not within 0...Nyquist" }
        if !(logFloor > 0) { return "log floor must be positive" }
        return nil
    }
}

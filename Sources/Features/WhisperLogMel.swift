import Foundation

/// Whisper's log-mel front end over one window of 16 kHz samples, exactly as OpenAI's
/// `log_mel_spectrogram` (Training/whisper.py `log_mel`): the window reflect-padded by 200 samples
/// each side, periodic Hann 400, hop 160, |FFT 400|², 80 Slaney-scale mel filters with Slaney
/// normalisation, log10 floored at 1e-10 and at the window's maximum - 8, then (x + 4) / 4. The
/// clamp is per window, so this computes whole windows rather than a stream.
/// Threading: not thread-safe (FFT buffers); one per thread.
public final class WhisperLogMel {
    public static let sampleRate = 16_000, fftSize = 400, hop = 160, melBands = 80
    private let window: [Float]
    private let filters: [(first: Int, weights: [Float])]
    private let fft = RealFFT(size: fftSize)
    private var padded: [Float] = []
    private var power = [Float](repeating: 0, count: fftSize / 2 + 1)

    public init() {
        let n = Self.fftSize
        window = (0..<n).map { Float(0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(n))) }
        filters = slaneyFilterbank(sampleRate: Self.sampleRate, fftSize: n, bands: Self.melBands)
    }

    /// Frames of a window of `samples` samples: one per hop.
    public static func frameCount(samples: Int) -> Int { samples / hop }

    /// Writes the log-mel of `samples` (at least 201 of them, for the reflection) to `output`,
    /// band-major ([80][frames]), replacing what it held.
    public func compute(_ samples: UnsafeBufferPointer<Float>, into output: inout [Float]) {
        let n = samples.count, half = Self.fftSize / 2, frames = Self.frameCount(samples: n)
        precondition(n > half, "a Whisper window needs more than \(half) samples")
        padded.removeAll(keepingCapacity: true)
        padded.reserveCapacity(n + 2 * half)
        for i in stride(from: half, to: 0, by: -1) { padded.append(samples[i]) }
        padded.append(contentsOf: samples)
        for i in 1...half { padded.append(samples[n - 1 - i]) }
        output.removeAll(keepingCapacity: true)
        output.append(contentsOf: repeatElement(0, count: Self.melBands * frames))
        var peak = -Float.infinity
        output.withUnsafeMutableBufferPointer { out in
            for t in 0..<frames {
                for i in 0..<Self.fftSize { fft.input[i] = padded[t * Self.hop + i] * window[i] }
                fft.power(into: &power)
                for (m, filter) in filters.enumerated() {
                    var sum: Float = 0
                    for j in filter.weights.indices { sum += filter.weights[j] * power[filter.first + j] }
                    let value = log10(max(sum, 1e-10))
                    out[m * frames + t] = value
                    peak = max(peak, value)
                }
            }
            for i in out.indices { out[i] = (max(out[i], peak - 8) + 4) / 4 }
        }
    }
}

/// librosa's `filters.mel(sr, n_fft, n_mels)` defaults (Slaney's mel scale, 0 Hz to Nyquist, each
/// filter scaled to unit area by 2 / its width in Hz), computed in Double like librosa, sparse.
func slaneyFilterbank(sampleRate: Int, fftSize: Int, bands: Int) -> [(first: Int, weights: [Float])] {
    let linear = 200.0 / 3, breakHz = 1000.0, breakMel = breakHz / linear, logStep = log(6.4) / 27
    func mel(_ hz: Double) -> Double { hz < breakHz ? hz / linear : breakMel + log(hz / breakHz) / logStep }
    func hz(_ mel: Double) -> Double { mel < breakMel ? mel * linear : breakHz * exp(logStep * (mel - breakMel)) }
    let top = mel(Double(sampleRate) / 2)
    let edges = (0..<(bands + 2)).map { hz(top * Double($0) / Double(bands + 1)) }
    let bins = (0...(fftSize / 2)).map { Double($0) * Double(sampleRate) / Double(fftSize) }
    return (0..<bands).map { m in
        let scale = 2 / (edges[m + 2] - edges[m])
        let weights = bins.map { f in
            scale * max(0, min((f - edges[m]) / (edges[m + 1] - edges[m]), (edges[m + 2] - f) / (edges[m + 2] - edges[m + 1])))
        }
        let first = weights.firstIndex { $0 > 0 } ?? 0
        let last = weights.lastIndex { $0 > 0 } ?? 0
        return (first, weights[first...last].map(Float.init))
    }
}

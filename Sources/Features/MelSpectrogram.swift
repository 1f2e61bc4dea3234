import CFFTW
import Foundation

/// FFTW's planner keeps global state: plan creation and destruction must not race.
let fftwPlannerLock = NSLock()
/// Plans by rule of thumb: FFTW_MEASURE was about 6 % faster in `analyze` but picks its algorithm by
/// timing, so two runs on the same file could differ in the last bit; results must be reproducible.
let fftwPlanFlags = UInt32(FFTW_ESTIMATE)

/// Streaming log-mel spectrogram: feed any number of samples, get each completed frame once.
/// Frame t covers samples [t*hop, t*hop + window) of the stream; the power spectrum of the
/// Hann-windowed frame goes through triangular HTK-mel filters, then log(mel + floor).
/// Threading: not thread-safe; one stream per instance (instances may run on different threads).
public final class MelSpectrogram {
    public let parameters: FeatureParameters
    private let window: [Float]
    /// Each filter's first FFT bin and its non-zero weights: a sparse filterbank.
    private let filters: [(first: Int, weights: [Float])]
    private let fft: RealFFT
    private var power: [Float]
    /// Samples received but not yet consumed by a complete frame.
    private var pending: [Float] = []

    public init(parameters: FeatureParameters) {
        precondition(parameters.problem == nil, parameters.problem ?? "")
        self.parameters = parameters
        let n = parameters.windowLength
        window = (0..<n).map { Float(0.5 - 0.5 * cos(2 * Double.pi * Double($0) / Double(n))) }
        filters = melFilterbank(parameters)
        let bins = parameters.fftSize / 2 + 1
        fft = RealFFT(size: parameters.fftSize)
        power = [Float](repeating: 0, count: bins)
    }

    /// Appends the log-mel frames that `samples` completes to `frames` (frame-major, `melBands` each).
    /// Returns how many frames were appended. `frames` grows geometrically (Array's own policy): an
    /// exact reservation per call copied the whole array each block, quadratic in the file's length.
    @discardableResult
    public func process<C: Collection>(_ samples: C, into frames: inout [Float]) -> Int where C.Element == Float {
        pending.append(contentsOf: samples)
        let count = parameters.frameCount(samples: pending.count)
        guard count > 0 else { return 0 }
        pending.withUnsafeBufferPointer { buf in
            for t in 0..<count { appendFrame(buf.baseAddress! + t * parameters.hopLength, to: &frames) }
        }
        pending.removeFirst(count * parameters.hopLength)
        return count
    }

    private func appendFrame(_ samples: UnsafePointer<Float>, to frames: inout [Float]) {
        window.withUnsafeBufferPointer { w in
            for i in 0..<parameters.windowLength { fft.input[i] = samples[i] * w[i] }
        }
        fft.power(into: &power)
        let floor = Float(parameters.logFloor)
        power.withUnsafeMutableBufferPointer { power in
            for filter in filters {
                var sum: Float = 0
                filter.weights.withUnsafeBufferPointer { w in
                    for j in 0..<w.count { sum += w[j] * power[filter.first + j] }
                }
                frames.append(log(sum + floor))
            }
        }
    }
}

/// An FFTW real-to-complex plan with its buffers: write `input`, then read `power`.
/// Threading: not thread-safe; one per owner.
final class RealFFT {
    let input: UnsafeMutablePointer<Float>
    private let output: UnsafeMutablePointer<fftwf_complex>
    private let plan: fftwf_plan
    let bins: Int

    init(size: Int) {
        bins = size / 2 + 1
        input = UnsafeMutablePointer<Float>.allocate(capacity: size)
        input.initialize(repeating: 0, count: size)
        output = UnsafeMutablePointer<fftwf_complex>.allocate(capacity: bins)
        fftwPlannerLock.lock()
        plan = fftwf_plan_dft_r2c_1d(Int32(size), input, output, fftwPlanFlags)
        fftwPlannerLock.unlock()
    }

    deinit {
        fftwPlannerLock.lock()
        fftwf_destroy_plan(plan)
        fftwPlannerLock.unlock()
        input.deallocate()
        output.deallocate()
    }

    /// Transforms `input` and writes |X[k]|² for every bin to `power` (bins values).
    func power(into power: inout [Float]) {
        fftwf_execute(plan)
        for k in 0..<bins {
            let (re, im) = output[k]
            power[k] = re * re + im * im
        }
    }
}

/// Triangular filters with edges evenly spaced on the HTK mel scale (2595 log10(1 + f/700)),
/// peak 1, not area-normalised; computed in Double like the numpy reference.
func melFilterbank(_ p: FeatureParameters) -> [(first: Int, weights: [Float])] {
    func mel(_ hz: Double) -> Double { 2595 * log10(1 + hz / 700) }
    func hz(_ mel: Double) -> Double { 700 * (pow(10, mel / 2595) - 1) }
    let lo = mel(p.fmin), hi = mel(p.fmax), count = p.melBands + 2
    let edges = (0..<count).map { i in hz(i == count - 1 ? hi : lo + Double(i) * (hi - lo) / Double(count - 1)) }
    let binHz = Double(p.sampleRate) / Double(p.fftSize)
    return (0..<p.melBands).map { m in
        let weights = (0...(p.fftSize / 2)).map { k -> Double in
            let f = Double(k) * binHz
            return max(0, min((f - edges[m]) / (edges[m + 1] - edges[m]), (edges[m + 2] - f) / (edges[m + 2] - edges[m + 1])))
        }
        let first = weights.firstIndex { $0 > 0 } ?? 0
        let last = weights.lastIndex { $0 > 0 } ?? 0
        return (first, weights[first...last].map(Float.init))
    }
}

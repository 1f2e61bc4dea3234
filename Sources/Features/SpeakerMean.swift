import Foundation

/// A speaker's mean log-mel spectrum, accumulated over speech frames only: subtracted from every
/// frame before the window z-normalisation, it removes what is constant about a voice (and the
/// microphone) so the model sees what changes with emotion. Mirrors Training/speaker.py.
/// Threading: a value type, freely shared.
public struct SpeakerMean: Equatable, Sendable {
    public private(set) var sum: [Double]
    public private(set) var frames: Int = 0

    public init(bands: Int) { sum = [Double](repeating: 0, count: bands) }

    /// Concrete rather than generic: called per frame from other modules, where an unspecialised
    /// generic cost 100 µs per live hop.
    public mutating func add(frame: ArraySlice<Float>) {
        sum.withUnsafeMutableBufferPointer { total in
            frame.withUnsafeBufferPointer { values in
                for i in 0..<min(total.count, values.count) { total[i] += Double(values[i]) }
            }
        }
        frames += 1
    }

    public mutating func add(_ other: SpeakerMean) {
        for i in sum.indices { sum[i] += other.sum[i] }
        frames += other.frames
    }

    /// The mean, pulled toward `prior` as if the prior had been heard for `priorFrames` frames
    /// (so the first seconds of a stream cannot swing it far). Nil without frames or prior.
    public func mean(prior: [Float]? = nil, priorFrames: Double = 0) -> [Float]? {
        guard let prior, priorFrames > 0 else { return frames == 0 ? nil : sum.map { Float($0 / Double(frames)) } }
        let weight = priorFrames + Double(frames)
        return sum.indices.map { Float((priorFrames * Double(prior[$0]) + sum[$0]) / weight) }
    }
}

extension SpeechActivity {
    /// Whether the mean energy of these 10 ms frames passes the voice threshold: the test for a
    /// log-mel frame (the energy frames it starts with) to count toward a speaker mean.
    public func isVoiced(_ energies: ArraySlice<Float>) -> Bool {
        guard !energies.isEmpty else { return false }
        let mean = energies.reduce(0, +) / Float(energies.count)
        return Double(mean) >= pow(10, thresholdDbfs / 10)
    }
}

import Foundation

/// Streaming short-term energy in 10 ms frames: the input of the speech-region finder and the
/// voice-activity gate. Threading: not thread-safe; one stream per instance.
public final class EnergyMeter {
    /// 10 ms at 16 kHz: fine enough to place the speech region, cheap to keep for an hour (1.4 MB).
    public static let frameLength = 160
    private var pending: [Float] = []

    public init() {}

    /// The level of frames with these energies in dBFS (their mean square), -120 for none or silence.
    public static func levelDbfs<C: Collection>(_ energies: C) -> Double where C.Element == Float {
        let power = energies.isEmpty ? 0 : Double(energies.reduce(0, +)) / Double(energies.count)
        return max(-120, 10 * log10(power + 1e-12))
    }

    /// Appends the mean square of each completed frame to `energies`.
    public func process<C: Collection>(_ samples: C, into energies: inout [Float]) where C.Element == Float {
        pending.append(contentsOf: samples)
        let count = pending.count / Self.frameLength
        guard count > 0 else { return }
        pending.withUnsafeBufferPointer { buf in
            for f in 0..<count {
                var sum: Float = 0
                for s in buf[(f * Self.frameLength)..<((f + 1) * Self.frameLength)] { sum += s * s }
                energies.append(sum / Float(Self.frameLength))
            }
        }
        pending.removeFirst(count * Self.frameLength)
    }

}

/// Where the speech is, from 10 ms frame energies. Threading: a value type, freely shared.
public struct SpeechActivity: Codable, Equatable, Sendable {
    /// Speech region: frames within `regionRangeDb` of the loudest, first to last, widened by `regionPadSeconds`.
    public var regionRangeDb: Double = 35
    public var regionPadSeconds: Double = 0.1
    /// Voice gate: a frame is voiced when louder than `thresholdDbfs`; a window carries voice
    /// when at least `minimumVoicedSeconds` of its frames are voiced.
    public var thresholdDbfs: Double = -60
    public var minimumVoicedSeconds: Double = 0.25
    /// The speech detector behind the energy gate (a frame is voiced when loud enough and speech to
    /// it); nil gates on energy alone.
    public var detector: VoiceDetector.Settings?

    /// The energy gate alone unless a detector is given; in config.json an absent `detector` is
    /// Silero VAD with its defaults, and `null` the energy gate alone.
    public init(detector: VoiceDetector.Settings? = nil) { self.detector = detector }

    enum CodingKeys: String, CodingKey, CaseIterable { case regionRangeDb, regionPadSeconds, thresholdDbfs, minimumVoicedSeconds, detector }

    public init(from decoder: Decoder) throws {
        let c = try decoder.settings(CodingKeys.self), d = SpeechActivity()
        regionRangeDb = try c.value(.regionRangeDb, or: d.regionRangeDb)
        regionPadSeconds = try c.value(.regionPadSeconds, or: d.regionPadSeconds)
        thresholdDbfs = try c.value(.thresholdDbfs, or: d.thresholdDbfs)
        minimumVoicedSeconds = try c.value(.minimumVoicedSeconds, or: d.minimumVoicedSeconds)
        detector = try c.value(.detector, or: VoiceDetector.Settings())
    }

    /// Writes `detector: null` for the energy gate alone (an absent key would read back as Silero).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(regionRangeDb, forKey: .regionRangeDb)
        try c.encode(regionPadSeconds, forKey: .regionPadSeconds)
        try c.encode(thresholdDbfs, forKey: .thresholdDbfs)
        try c.encode(minimumVoicedSeconds, forKey: .minimumVoicedSeconds)
        try c.encode(detector, forKey: .detector)
    }

    /// A detector for one stream at a time, or nil without one; it skips what is below this gate's floor.
    public func makeDetector() throws -> VoiceDetector? { try detector.map { try VoiceDetector(settings: $0, quietFloorDbfs: thresholdDbfs) } }

    /// The speech region as sample indices (16 kHz), or nil when the signal is digital silence.
    public func region(energies: [Float], sampleCount: Int) -> Range<Int>? {
        guard let peak = energies.max(), peak > 1e-10 else { return nil }
        let threshold = Float(Double(peak) * pow(10, -regionRangeDb / 10))
        let first = energies.firstIndex { $0 >= threshold }!, last = energies.lastIndex { $0 >= threshold }!
        let pad = Int((regionPadSeconds * 16_000).rounded())
        let lower = max(0, first * EnergyMeter.frameLength - pad)
        return lower..<max(lower, min(sampleCount, (last + 1) * EnergyMeter.frameLength + pad))
    }

    /// Seconds of voiced frames among `energies`.
    public func voicedSeconds<C: Collection>(_ energies: C) -> Double where C.Element == Float {
        let threshold = Float(pow(10, thresholdDbfs / 10))
        return Double(energies.lazy.filter { $0 >= threshold }.count) * Double(EnergyMeter.frameLength) / 16_000
    }

    public func hasVoice<C: Collection>(_ energies: C) -> Bool where C.Element == Float {
        voicedSeconds(energies) >= minimumVoicedSeconds
    }
}

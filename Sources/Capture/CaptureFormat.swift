import CALSA

/// Sample encodings the capture path converts from. All are little-endian, the byte order of every Linux
/// target this program runs on.
///
/// Threading: a plain value (Sendable), safe to pass between threads.
public enum SampleFormat: Sendable, CaseIterable, CustomStringConvertible {
    case s16, s32, float

    /// Preference when the caller does not ask for one: the float format loses nothing and needs no
    /// conversion, 32-bit integers keep the device's full resolution, 16-bit is the common denominator.
    public static let preferenceOrder: [SampleFormat] = [.float, .s32, .s16]

    public var description: String {
        switch self {
        case .s16: return "S16_LE"
        case .s32: return "S32_LE"
        case .float: return "FLOAT_LE"
        }
    }

    var alsaFormat: snd_pcm_format_t {
        switch self {
        case .s16: return SND_PCM_FORMAT_S16_LE
        case .s32: return SND_PCM_FORMAT_S32_LE
        case .float: return SND_PCM_FORMAT_FLOAT_LE
        }
    }

    var bytesPerSample: Int {
        switch self {
        case .s16: return 2
        case .s32, .float: return 4
        }
    }

    /// The value of a full-scale sample, so that integer samples map onto -1..<1 as `Float`.
    var fullScale: Float {
        switch self {
        case .s16: return 32768
        case .s32: return 2_147_483_648
        case .float: return 1
        }
    }
}

/// What a device delivers: the consumer needs the rate to resample; the channels and encoding are folded
/// into mono `Float` by `CaptureThread`.
///
/// Threading: a plain value (Sendable), safe to pass between threads.
public struct CaptureFormat: Equatable, Sendable, CustomStringConvertible {
    public var sampleRate: Int
    public var channels: Int
    public var sampleFormat: SampleFormat

    public init(sampleRate: Int, channels: Int, sampleFormat: SampleFormat) {
        self.sampleRate = sampleRate
        self.channels = channels
        self.sampleFormat = sampleFormat
    }

    public var description: String {
        "\(sampleRate) Hz, \(channels) channel\(channels == 1 ? "" : "s"), \(sampleFormat)"
    }

    var bytesPerFrame: Int { channels * sampleFormat.bytesPerSample }
}

#if _endian(big)
#error("Capture requests little-endian sample formats and reads them natively")
#endif

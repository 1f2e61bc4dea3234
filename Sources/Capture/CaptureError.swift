import CALSA
import Glibc

/// Why capture could not start or stopped. Each description is one line meant for the user.
///
/// Threading: a plain value (Sendable), safe to pass between threads.
public enum CaptureError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The device name is unknown, busy, or otherwise refused by ALSA.
    case cannotOpen(device: String, reason: String)
    /// ALSA configuration text given to `CaptureDevice(configText:name:)` did not parse.
    case invalidConfiguration(reason: String)
    /// The device offers no combination of access, format, channels, rate and period that capture can use.
    case unsupportedFormat(device: String, reason: String)
    /// The device went away while capturing (ALSA's -ENODEV, -EBADFD or -ENXIO: unplugged, driver gone).
    case deviceLost(device: String, reason: String)
    /// Any other read error that recovery could not clear.
    case readFailed(device: String, reason: String)

    public var description: String {
        switch self {
        case let .cannotOpen(device, reason):
            return "cannot open capture device '\(device)': \(reason) (list devices with 'emotion-monitor devices')"
        case let .invalidConfiguration(reason):
            return "invalid ALSA configuration: \(reason)"
        case let .unsupportedFormat(device, reason):
            return "capture device '\(device)' cannot be used: \(reason)"
        case let .deviceLost(device, reason):
            return "capture device '\(device)' was lost: \(reason)"
        case let .readFailed(device, reason):
            return "reading from capture device '\(device)' failed: \(reason)"
        }
    }

    /// Classifies a fatal error code returned by a read (or by the recovery after it).
    static func fromRead(device: String, code: Int) -> CaptureError {
        let reason = alsaMessage(code)
        switch -code {
        case Int(ENODEV), Int(EBADFD), Int(ENXIO): return .deviceLost(device: device, reason: reason)
        default: return .readFailed(device: device, reason: reason)
        }
    }
}

/// ALSA's text for a negative error code (it covers both errno values and ALSA's own codes).
func alsaMessage(_ code: Int) -> String {
    String(cString: snd_strerror(Int32(truncatingIfNeeded: code)))
}

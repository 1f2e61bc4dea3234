import CALSA
import Foundation

/// A PCM that can be opened for capture, as ALSA's device hints describe it.
///
/// Threading: a plain value (Sendable), safe to pass between threads.
public struct DeviceInfo: Equatable, Sendable {
    /// The name to pass to `CaptureDevice(name:)`.
    public var name: String
    /// ALSA's human-readable description, its lines joined into one.
    public var description: String
    /// True for "default", the device used when none is named.
    public var isDefault: Bool

    public init(name: String, description: String, isDefault: Bool) {
        self.name = name
        self.description = description
        self.isDefault = isDefault
    }
}

extension CaptureDevice {
    /// PCMs usable for capture, "default" first when it exists. Entries without an IOID hint serve both
    /// directions, so they are kept along with the "Input" ones. Returns an empty array if ALSA has no hints.
    public static func listCaptureDevices() -> [DeviceInfo] {
        _ = silenceALSAErrorsOnce
        var hints: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
        guard snd_device_name_hint(-1, "pcm", &hints) >= 0, let hints else { return [] }
        defer { snd_device_name_free_hint(hints) }

        var devices: [DeviceInfo] = []
        var cursor = hints
        while let hint = cursor.pointee {
            cursor += 1
            let direction = hintValue(hint, "IOID")
            guard direction == nil || direction == "Input", let name = hintValue(hint, "NAME") else { continue }
            let description = (hintValue(hint, "DESC") ?? "")
                .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", ")
            devices.append(DeviceInfo(name: name, description: description, isDefault: name == "default"))
        }
        // A stable partition: the default device first, the rest in ALSA's order.
        return devices.filter(\.isDefault) + devices.filter { !$0.isDefault }
    }

    /// One field of a hint; ALSA returns a malloc'd copy that the caller frees.
    private static func hintValue(_ hint: UnsafeMutableRawPointer, _ id: String) -> String? {
        guard let value = snd_device_name_get_hint(hint, id) else { return nil }
        defer { free(value) }
        return String(cString: value)
    }
}

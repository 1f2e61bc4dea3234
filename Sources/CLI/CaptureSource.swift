import Capture
import RingBuffer
import Streaming

/// A capture device as the live pipeline's source: here, where both are visible, so that Streaming
/// and the modules above it need not link ALSA.
extension CaptureThread: AudioSource {
    public var sampleRate: Int { format.sampleRate }
    public var failureDescription: String? { failure?.description }
    public var health: SourceHealth { SourceHealth(overruns: overruns, reopens: reopens, reconnecting: isReconnecting) }
    public var summary: String { "device \(deviceName), \(format)" }
}

/// The live pipeline's source and the ring it fills: `replay` played back (in real time unless
/// `fast`), or else the ALSA device `device` (reopened when lost if `reopen`).
func openSource(device: String, replay: [String], fast: Bool = false, reopen: Bool,
                settings: Configuration.ListenSettings) throws -> (AudioSource, SampleRing) {
    if !replay.isEmpty {
        let source = try ReplaySource(paths: replay, ringSeconds: settings.ringSeconds, realTime: !fast)
        return (source, source.ring)
    }
    let capture = try CaptureDevice(name: device, preferredSampleRate: settings.sampleRate)
    let ring = SampleRing(capacity: Int(settings.ringSeconds * Double(capture.format.sampleRate)))
    return (CaptureThread(device: capture, ring: ring, reopen: reopen), ring)
}

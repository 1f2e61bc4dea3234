import Capture
import Streaming

/// A capture device as the live pipeline's source: here, where both are visible, so that Streaming
/// and the modules above it need not link ALSA.
extension CaptureThread: AudioSource {
    public var sampleRate: Int { format.sampleRate }
    public var failureDescription: String? { failure?.description }
    public var health: SourceHealth { SourceHealth(overruns: overruns, reopens: reopens, reconnecting: isReconnecting) }
}

import CALSA
import CALSAErrors

/// ALSA prints its own diagnostics to stderr unless told otherwise; the program reports errors itself, in
/// one line. A global `let` runs its initializer once, thread-safely, on first use.
let silenceALSAErrorsOnce: Void = emotion_monitor_silence_alsa_errors()

/// An ALSA PCM opened for capture and configured for interleaved reads in the device's own rate and format,
/// so ALSA does no resampling or conversion of its own.
///
/// Threading: not thread-safe; one thread at a time opens, reads and closes it (a `CaptureThread` takes it over).
public final class CaptureDevice {
    /// The ALSA PCM name it was opened with, as given.
    public let name: String
    /// The negotiated rate, channel count and encoding.
    public let format: CaptureFormat
    /// Frames per period: the most a single read waits for (about 20 ms).
    public let periodFrames: Int
    /// Frames the device buffers before it overruns (at least four periods where the device allows).
    public let bufferFrames: Int

    /// The PCM handle, nil once closed. Internal so that `CaptureThread` can read from it directly.
    private(set) var handle: OpaquePointer?
    private let request: Request

    /// How to find and configure the device again, so that a lost device can be reopened as it was.
    struct Request {
        /// The configuration text the name is resolved in, or nil for the system's ALSA configuration.
        var configText: String?
        var preferredSampleRate: Int
        var sampleFormats: [SampleFormat]
        var channels: Int?
    }

    /// Opens `name` (such as "default", "hw:1,0" or "plughw:CARD=Mic").
    ///
    /// - Parameters:
    ///   - configText: ALSA configuration text to resolve `name` in instead of the system's configuration,
    ///     so that tests (or a user's private definition) need no files under /etc.
    ///   - preferredSampleRate: the rate asked for; the device's nearest supported rate is accepted.
    ///   - sampleFormats: encodings to try, in order; the first the device supports is used.
    ///   - channels: the channel count to insist on, or nil for mono where possible, else the device's minimum.
    public convenience init(
        name: String,
        configText: String? = nil,
        preferredSampleRate: Int = 48000,
        sampleFormats: [SampleFormat] = SampleFormat.preferenceOrder,
        channels: Int? = nil
    ) throws {
        try self.init(name: name, request: Request(
            configText: configText, preferredSampleRate: preferredSampleRate, sampleFormats: sampleFormats, channels: channels))
    }

    init(name: String, request: Request) throws {
        _ = silenceALSAErrorsOnce
        let pcm = try Self.open(name: name, configText: request.configText)
        do {
            (format, periodFrames, bufferFrames) = try Self.configure(pcm, name: name, request: request)
        } catch {
            snd_pcm_close(pcm)
            throw error
        }
        self.name = name
        self.request = request
        handle = pcm
    }

    deinit {
        close()
    }

    /// Closes the PCM; later calls do nothing.
    public func close() {
        if let pcm = handle {
            snd_pcm_close(pcm)
            handle = nil
        }
    }

    /// Opens the same device again with the same request, after it was lost.
    func reopened() throws -> CaptureDevice {
        try CaptureDevice(name: name, request: request)
    }

    private static func open(name: String, configText: String?) throws -> OpaquePointer {
        var pcm: OpaquePointer?
        let result: Int32
        if let configText {
            let config = try loadConfig(configText)
            defer { snd_config_delete(config) }
            // The PCM copies what it needs from the configuration while opening, so it can be freed afterwards.
            result = snd_pcm_open_lconf(&pcm, name, SND_PCM_STREAM_CAPTURE, SND_PCM_NONBLOCK, config)
        } else {
            // Non-blocking open: a device another program holds fails at once with "busy" instead of
            // waiting until it is free; reads are blocking again below.
            result = snd_pcm_open(&pcm, name, SND_PCM_STREAM_CAPTURE, SND_PCM_NONBLOCK)
        }
        guard result >= 0, let pcm else {
            throw CaptureError.cannotOpen(device: name, reason: alsaMessage(Int(result)))
        }
        snd_pcm_nonblock(pcm, 0)
        return pcm
    }

    private static func loadConfig(_ text: String) throws -> OpaquePointer {
        var config: OpaquePointer?
        var result = snd_config_top(&config)
        guard result >= 0, let config else {
            throw CaptureError.invalidConfiguration(reason: alsaMessage(Int(result)))
        }
        var input: OpaquePointer?
        result = text.withCString { snd_input_buffer_open(&input, $0, text.utf8.count) }
        if result >= 0, let input {
            result = snd_config_load(config, input)
            snd_input_close(input)
        }
        guard result >= 0 else {
            snd_config_delete(config)
            throw CaptureError.invalidConfiguration(reason: alsaMessage(Int(result)))
        }
        return config
    }

    /// Negotiates hardware parameters in the order ALSA needs them: access, format, channels, rate, then
    /// period and buffer sizes, which depend on the rate.
    private static func configure(
        _ pcm: OpaquePointer, name: String, request: Request
    ) throws -> (CaptureFormat, period: Int, buffer: Int) {
        // snd_pcm_hw_params_alloca is a macro, which Swift cannot call.
        var allocated: OpaquePointer?
        guard snd_pcm_hw_params_malloc(&allocated) >= 0, let params = allocated else {
            throw CaptureError.unsupportedFormat(device: name, reason: "out of memory")
        }
        defer { snd_pcm_hw_params_free(params) }

        func check(_ result: Int32, _ what: String) throws {
            if result < 0 {
                throw CaptureError.unsupportedFormat(device: name, reason: "\(what): \(alsaMessage(Int(result)))")
            }
        }

        try check(snd_pcm_hw_params_any(pcm, params), "no configuration available")
        try check(snd_pcm_hw_params_set_access(pcm, params, SND_PCM_ACCESS_RW_INTERLEAVED), "interleaved reads")

        guard let sampleFormat = request.sampleFormats.first(where: {
            snd_pcm_hw_params_test_format(pcm, params, $0.alsaFormat) == 0
        }) else {
            let asked = request.sampleFormats.map(\.description).joined(separator: ", ")
            throw CaptureError.unsupportedFormat(device: name, reason: "supports none of the sample formats \(asked)")
        }
        try check(snd_pcm_hw_params_set_format(pcm, params, sampleFormat.alsaFormat), "sample format \(sampleFormat)")

        var channels: UInt32
        if let wanted = request.channels {
            channels = UInt32(wanted)
            try check(snd_pcm_hw_params_set_channels(pcm, params, channels), "\(wanted) channels")
        } else {
            // The fewest channels the device offers: mono where it can, since channels are averaged anyway.
            channels = 0
            try check(snd_pcm_hw_params_set_channels_first(pcm, params, &channels), "channel count")
        }

        // Resampling stays with the consumer, which knows its target rate; ALSA's plug layer would only add
        // a second, lower-quality conversion.
        _ = snd_pcm_hw_params_set_rate_resample(pcm, params, 0)
        var rate = UInt32(request.preferredSampleRate)
        try check(snd_pcm_hw_params_set_rate_near(pcm, params, &rate, nil), "sample rate near \(request.preferredSampleRate) Hz")

        var period = snd_pcm_uframes_t(max(Int(rate) / 50, 1))
        try check(snd_pcm_hw_params_set_period_size_near(pcm, params, &period, nil), "period size")
        // A deep buffer costs capture no latency (a read returns as soon as one period is in) and lets the
        // capture thread be descheduled for a while on a busy machine without an overrun. At least four
        // periods where the device allows; then as near to ten as it gets.
        var minimumBuffer = period * 4
        _ = snd_pcm_hw_params_set_buffer_size_min(pcm, params, &minimumBuffer)
        var buffer = period * 10
        try check(snd_pcm_hw_params_set_buffer_size_near(pcm, params, &buffer), "buffer size")

        try check(snd_pcm_hw_params(pcm, params), "applying hardware parameters")

        // Read back what was installed rather than trusting the requests.
        var dir: Int32 = 0
        _ = snd_pcm_hw_params_get_rate(params, &rate, &dir)
        _ = snd_pcm_hw_params_get_channels(params, &channels)
        _ = snd_pcm_hw_params_get_period_size(params, &period, &dir)
        _ = snd_pcm_hw_params_get_buffer_size(params, &buffer)
        // The same range files are held to: outside it the resampler and the model have nothing to go on.
        guard (8_000...192_000).contains(Int(rate)) else {
            throw CaptureError.unsupportedFormat(device: name, reason: "its rate \(rate) Hz is outside the supported 8000...192000 Hz")
        }
        let format = CaptureFormat(sampleRate: Int(rate), channels: Int(channels), sampleFormat: sampleFormat)
        return (format, Int(period), Int(buffer))
    }
}

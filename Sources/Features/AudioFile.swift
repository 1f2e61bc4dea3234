import CSndFile
import Foundation

/// sf_open reports why it failed through libsndfile's global error state: serialise opens so that
/// parallel analyses each read their own reason.
private let openLock = NSLock()

/// libsndfile's message for `handle` (nil: the last failed open) without the "Error : " some carry
/// and the closing period, to sit inside a one-line error.
private func sndfileReason(_ handle: OpaquePointer?) -> String {
    var text = String(cString: sf_strerror(handle))
    if text.hasPrefix("Error : ") { text.removeFirst(8) }
    return text.hasSuffix(".") ? String(text.dropLast()) : text
}

/// Errors reading or decoding audio, each a one-line message for the user.
public enum AudioError: Error, CustomStringConvertible, Equatable {
    case notFound(String)
    case isDirectory(String)
    case empty(String)
    case unreadable(String, reason: String)
    case unsupportedRate(String, rate: Int)
    case resampler(String)

    public var description: String {
        switch self {
        case .notFound(let p): return "\(p): no such file"
        case .isDirectory(let p): return "\(p): is a directory, not an audio file"
        case .empty(let p): return "\(p): file is empty"
        case .unreadable(let p, let reason): return "\(p): cannot decode audio (\(reason))"
        case .unsupportedRate(let p, let rate): return "\(p): sample rate \(rate) Hz is outside the supported 8000...192000 Hz"
        case .resampler(let reason): return "resampler failed: \(reason)"
        }
    }
}

/// An audio file opened with libsndfile (WAV, FLAC, OGG, MP3, ... whatever it was built with),
/// read block by block as mono Float so that long files never load whole.
/// Threading: not thread-safe; one reader per thread.
public final class AudioFile {
    public let path: String
    public let sampleRate: Int
    public let channels: Int
    /// Frames as the file's header states them (libsndfile may report a huge count for some streams).
    public let frames: Int
    /// Samples that were NaN or infinite in a float file, replaced by silence.
    public private(set) var nonFiniteSamples = 0

    private let handle: OpaquePointer
    private var interleaved: [Float] = []

    public init(path: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw AudioError.notFound(path) }
        if isDirectory.boolValue { throw AudioError.isDirectory(path) }
        var info0 = stat()
        guard stat(path, &info0) == 0 else { throw AudioError.notFound(path) }
        // A device, FIFO or stdin has no size to go by, and libsndfile needs to seek: say what it is.
        guard info0.st_mode & S_IFMT == S_IFREG else { throw AudioError.unreadable(path, reason: "not a regular file") }
        if info0.st_size == 0 { throw AudioError.empty(path) }
        var info = SF_INFO()
        openLock.lock()
        let opened = sf_open(path, Int32(SFM_READ), &info)
        let reason = opened == nil ? sndfileReason(nil) : ""
        openLock.unlock()
        guard let handle = opened else { throw AudioError.unreadable(path, reason: reason) }
        self.handle = handle
        sampleRate = Int(info.samplerate)
        channels = Int(info.channels)
        frames = Int(info.frames)
        guard channels > 0 else {
            sf_close(handle)
            throw AudioError.unreadable(path, reason: "no channels")
        }
        guard (8_000...192_000).contains(sampleRate) else {
            sf_close(handle)
            throw AudioError.unsupportedRate(path, rate: sampleRate)
        }
    }

    deinit { sf_close(handle) }

    public var duration: Double { Double(frames) / Double(sampleRate) }

    /// Reads up to `maxFrames` frames, mixed to mono, appending them to `output`. Returns the number
    /// of frames read: 0 at the end of the file. Throws if the data is corrupt part-way through.
    @discardableResult
    public func read(maxFrames: Int, into output: inout [Float]) throws -> Int {
        if interleaved.count < maxFrames * channels { interleaved = [Float](repeating: 0, count: maxFrames * channels) }
        let got = Int(interleaved.withUnsafeMutableBufferPointer { sf_readf_float(handle, $0.baseAddress, sf_count_t(maxFrames)) })
        // A short read is the end of the file or a decoder that lost its way (a truncated or damaged
        // FLAC): only the error state tells them apart, and a damaged file must not pass for a short one.
        if got < maxFrames, sf_error(handle) != 0 {
            throw AudioError.unreadable(path, reason: sndfileReason(handle))
        }
        let scale = 1 / Float(channels), start = output.count, channels = channels
        output.append(contentsOf: repeatElement(0, count: got))  // grows geometrically, then filled in place
        var nonFinite = 0
        interleaved.withUnsafeBufferPointer { source in
            output.withUnsafeMutableBufferPointer { mono in
                for frame in 0..<got {
                    var sum: Float = 0
                    for c in 0..<channels {
                        let s = source[frame * channels + c]
                        if s.isFinite { sum += s } else { nonFinite += 1 }
                    }
                    mono[start + frame] = sum * scale
                }
            }
        }
        nonFiniteSamples += nonFinite
        return got
    }
}

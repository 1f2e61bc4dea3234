import Foundation

/// An ALSA `file` PCM over a `null` slave, defined in configuration text: it delivers a raw file bit for bit,
/// as fast as it is read, so capture is testable with no sound card and no files under /etc. After the file it
/// keeps delivering frames forever (the reader's buffer comes back untouched), so every capture test gives
/// the thread a frame limit or stops it.
final class FilePCM {
    /// The PCM name defined by `configText`.
    let name = "testcap"
    let configText: String
    private let file: URL

    /// Writes `samples` (interleaved, in native little-endian layout) to a temporary raw file.
    init<Sample>(_ samples: [Sample]) throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("capture-test-\(UUID().uuidString).raw")
        try samples.withUnsafeBytes { try Data($0).write(to: file) }
        self.file = file
        configText = """
        pcm.testcap {
            type file
            slave.pcm { type null }
            file "/dev/null"
            infile "\(file.path)"
            format "raw"
        }
        """
    }

    deinit {
        try? FileManager.default.removeItem(at: file)
    }
}

/// A sine that swings over most of the 16-bit range plus a counter that walks through the low bit patterns.
func s16Pattern(frames: Int) -> [Int16] {
    (0..<frames).map { index in
        let sine = 30000 * sin(2 * Double.pi * 440 * Double(index) / 16000)
        return Int16(sine) &+ Int16(truncatingIfNeeded: index % 1999)
    }
}

import Features
import Foundation
import Model
import Streaming
import XCTest

/// The speech detector skips long stretches below the energy floor; what it hears must not change.
final class QuietSkippingTests: XCTestCase {
    /// The default speech settings (what config.json's empty `speech` gives): Silero VAD and its floor.
    static let speech = try! JSONDecoder().decode(SpeechActivity.self, from: Data("{}".utf8))

    func samples(_ clip: String) throws -> [Float] {
        let file = try AudioFile(path: SlidingWindowTests.root.appendingPathComponent("Tests/Clips/\(clip).flac").path)
        var out: [Float] = []
        while try file.read(maxFrames: 4096, into: &out) > 0 {}
        return out
    }

    /// Speech, `gap` (seconds of `quiet`), speech, streamed in 37 ms blocks as live audio arrives:
    /// the speech energies (energy and detector together) and the steps the detector skipped.
    func heard(gap: Double, quiet: (Int) -> Float, skipping: Bool) throws -> (energies: [Float], skipped: Int) {
        let audio = try samples("Actor_01/03-01-05-02-01-01-01") + (0..<Int(gap * 16_000)).map(quiet) + samples("Actor_02/03-01-03-02-01-01-02")
        let detector = try XCTUnwrap(try Self.speech.makeDetector())
        if !skipping { detector.quietFloorDbfs = nil }
        let stream = try FeatureStream(for: SlidingWindowTests.weights.card, inputRate: 16_000, detector: detector)
        for start in stride(from: 0, to: audio.count, by: 592) { try stream.push(audio[start..<min(audio.count, start + 592)]) }
        try stream.finish()
        return (stream.speechEnergies, detector.skippedSteps)
    }

    func testSpeechAfterLongDigitalSilenceIsHeardAtTheSameFrames() throws {
        let reference = try heard(gap: 60, quiet: { _ in 0 }, skipping: false)
        let skipping = try heard(gap: 60, quiet: { _ in 0 }, skipping: true)
        XCTAssertEqual(reference.skipped, 0)
        XCTAssertGreaterThan(skipping.skipped, 1200, "two thirds of 60 s (1875 steps) never run through the model")
        XCTAssertTrue(reference.energies.contains { $0 > 0 }, "speech is heard at all")
        assertSame(skipping.energies, reference.energies)
    }

    /// The frames where two runs' speech energies differ, reported without printing thousands of values.
    func assertSame(_ a: [Float], _ b: [Float], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        let differing = (0..<min(a.count, b.count)).filter { a[$0] != b[$0] }
        XCTAssertEqual(differing.count, 0, "frames heard differently, from \(differing.first.map(String.init) ?? "-") of \(a.count)", file: file, line: line)
    }

    /// A quiet room, not digital silence: noise about 20 dB below the -60 dBFS floor.
    func testSpeechAfterLongQuietNoiseIsHeardAtTheSameFrames() throws {
        var state: UInt64 = 12345
        let noise: (Int) -> Float = { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Float(state >> 40) / Float(1 << 24) - 0.5) * 0.0006
        }
        let reference = try heard(gap: 60, quiet: noise, skipping: false)
        state = 12345
        let skipping = try heard(gap: 60, quiet: noise, skipping: true)
        XCTAssertGreaterThan(skipping.skipped, 1200)
        assertSame(skipping.energies, reference.energies)
    }
}


@testable import Features
import Foundation
import Model
import XCTest

/// Pins the Swift Whisper front end to OpenAI's, as Training/whisper.py computes it in PyTorch.
final class WhisperLogMelTests: XCTestCase {
    let fixture = try! SafeTensors(contentsOf: Bundle.module.url(forResource: "Fixtures/whisper-logmel", withExtension: "safetensors")!)

    func testLogMelMatchesPyTorch() {
        let samples = fixture.tensors["samples"]!.values, reference = fixture.tensors["mel"]!
        var mel: [Float] = []
        samples.withUnsafeBufferPointer { WhisperLogMel().compute($0, into: &mel) }
        XCTAssertEqual([80, WhisperLogMel.frameCount(samples: samples.count)], reference.shape)
        let gap = zip(mel, reference.values).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(gap, 1e-4, "largest log-mel difference from PyTorch (values span about 2)")
    }

    /// librosa's filters: Slaney's scale bends from linear to logarithmic at 1 kHz, each filter has unit area.
    func testFiltersAreSlaneysWithUnitArea() {
        let filters = slaneyFilterbank(sampleRate: 16_000, fftSize: 400, bands: 80)
        XCTAssertEqual(filters.count, 80)
        for f in filters.dropFirst(2) {
            let area = f.weights.reduce(0, +) * 40  // 40 Hz per bin
            XCTAssertEqual(area, 1, accuracy: 0.08)
        }
        XCTAssertEqual(filters.last!.first + filters.last!.weights.count, 200, "the top filter ends just below Nyquist")
    }

    /// Silence gives the floor everywhere, not NaN: the window's maximum - 8 clamp never divides.
    func testSilenceIsFinite() {
        var mel: [Float] = []
        [Float](repeating: 0, count: 48_000).withUnsafeBufferPointer { WhisperLogMel().compute($0, into: &mel) }
        XCTAssertEqual(mel.count, 80 * 300)
        XCTAssertTrue(mel.allSatisfy { $0 == -1.5 }, "log10(1e-10) = -10, (x + 4) / 4 = -1.5")
    }
}

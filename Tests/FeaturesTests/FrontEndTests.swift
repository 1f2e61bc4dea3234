@testable import Features
import Foundation
import Model
import XCTest

/// Pins the Swift front end to the numpy reference that Training/export.py wrote (and checked
/// against the PyTorch front end the model was trained with): no train/serve skew.
final class FrontEndTests: XCTestCase {
    let fixture = try! SafeTensors(contentsOf: Bundle.module.url(forResource: "Fixtures/frontend", withExtension: "safetensors")!)

    func testLogMelMatchesNumpyReference() throws {
        let audio = fixture.tensors["audio"]!.values
        let reference = fixture.tensors["logmel"]!
        let mel = MelSpectrogram(parameters: FeatureParameters())
        var frames: [Float] = []
        mel.process(audio, into: &frames)
        XCTAssertEqual([frames.count / 40, 40], reference.shape)
        let gap = zip(frames, reference.values).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(gap, 2e-3, "largest log-mel difference from the numpy reference")
    }

    func testStreamingInOddBlocksGivesTheSameFrames() {
        let audio = fixture.tensors["audio"]!.values
        let whole = MelSpectrogram(parameters: FeatureParameters()), pieces = MelSpectrogram(parameters: FeatureParameters())
        var a: [Float] = [], b: [Float] = []
        whole.process(audio, into: &a)
        var i = 0, size = 1
        while i < audio.count {
            pieces.process(audio[i..<min(i + size, audio.count)], into: &b)
            i += size
            size = size * 3 % 997 + 1
        }
        XCTAssertEqual(a, b)
    }

    /// Appending block after block must not copy all earlier frames each time (a 4 h file took 144 s
    /// that way): the storage moves only when it grows geometrically.
    func testFramesGrowGeometricallyAcrossBlocks() {
        let mel = MelSpectrogram(parameters: FeatureParameters())
        let block = [Float](repeating: 0.01, count: 1 << 16)
        var frames: [Float] = [], moves = 0, last: UnsafeRawPointer?
        for _ in 0..<200 {
            mel.process(block, into: &frames)
            let base = frames.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress) }
            if base != last { moves += 1; last = base }
        }
        XCTAssertLessThan(moves, 30, "storage reallocated \(moves) times in 200 blocks")
    }

    func testSpeechRegionMatchesReference() {
        let audio = fixture.tensors["audio"]!.values
        var energies: [Float] = []
        EnergyMeter().process(audio, into: &energies)
        let region = SpeechActivity().region(energies: energies, sampleCount: audio.count)!
        let expected = fixture.tensors["region"]!.values.map(Int.init)
        XCTAssertEqual([region.lowerBound, region.upperBound], expected)
    }

    /// The speaker mean over speech frames matches Training/speaker.py: same frames, same values.
    func testSpeakerMeanMatchesReference() {
        let audio = fixture.tensors["audio"]!.values
        let reference = fixture.tensors["logmel"]!.values
        var energies: [Float] = []
        EnergyMeter().process(audio, into: &energies)
        let parameters = FeatureParameters(), gate = SpeechActivity()
        var mean = SpeakerMean(bands: parameters.melBands)
        let perFrame = parameters.hopLength / EnergyMeter.frameLength
        for t in 0..<(reference.count / parameters.melBands) {
            let e = t * perFrame
            guard e + perFrame <= energies.count, gate.isVoiced(energies[e..<(e + perFrame)]) else { continue }
            mean.add(frame: reference[(t * parameters.melBands)..<((t + 1) * parameters.melBands)])
        }
        XCTAssertEqual(Float(mean.frames), fixture.tensors["speaker_frames"]!.values[0])
        for (a, b) in zip(mean.mean()!, fixture.tensors["speaker_mean"]!.values) { XCTAssertEqual(a, b, accuracy: 1e-4) }
    }

    /// Pitch per frame and the sex head's statistics match Training/pitch.py (float32 in both, so a
    /// frame near a decision edge may fall the other way: the statistics must still agree).
    func testPitchMatchesReference() {
        let audio = fixture.tensors["audio"]!.values
        var f0: [Float] = [], levels: [Float] = []
        let tracker = PitchTracker(parameters: FeatureParameters())
        var i = 0, size = 1
        while i < audio.count {  // in odd pieces: streaming must not change a frame
            tracker.process(audio[i..<min(i + size, audio.count)], f0: &f0, levels: &levels)
            i += size
            size = size * 7 % 4001 + 1
        }
        let refF0 = fixture.tensors["f0"]!.values, refLevels = fixture.tensors["levels"]!.values
        XCTAssertEqual(f0.count, refF0.count)
        XCTAssertEqual(f0.count, FeatureParameters().frameCount(samples: audio.count))
        let agree = zip(f0, refF0).filter { abs($0 - $1) <= 0.01 * max($1, 1) }.count
        XCTAssertGreaterThanOrEqual(Double(agree) / Double(refF0.count), 0.97, "frames whose F0 matches the reference")
        XCTAssertGreaterThan(refF0.filter { $0 > 0 }.count, refF0.count / 4, "the reference clip is mostly voiced")
        for (a, b) in zip(levels, refLevels) where b > -100 { XCTAssertEqual(a, b, accuracy: 0.01) }
        let stats = pitchStatistics(f0: f0[...], levels: levels[...], frames: f0.count)
        for (a, b) in zip(stats, fixture.tensors["pitch_stats"]!.values) { XCTAssertEqual(a, b, accuracy: 0.02) }
    }

    func testPitchOfAToneAndOfSilence() {
        let tone = (0..<16_000).map { Float(0.3 * sin(2 * Double.pi * 200 * Double($0) / 16_000)) }
        var f0: [Float] = [], levels: [Float] = []
        PitchTracker(parameters: FeatureParameters()).process(tone + [Float](repeating: 0, count: 8_000), f0: &f0, levels: &levels)
        let voiced = f0.filter { $0 > 0 }
        XCTAssertGreaterThan(voiced.count, 40)
        for f in voiced { XCTAssertEqual(f, 200, accuracy: 3) }
        XCTAssertEqual(f0.suffix(10), Array(repeating: 0, count: 10), "silence is unvoiced")
        let stats = pitchStatistics(f0: f0[...], levels: levels[...], frames: f0.count)
        XCTAssertEqual(stats[0], log2(200 / 150), accuracy: 0.02)
        XCTAssertEqual(pitchStatistics(f0: [], levels: [], frames: 149), [0, 0], "no voiced frame: neutral inputs")
    }

    func testOnlineMeanStartsAtThePriorAndMovesWithSpeech() {
        var mean = SpeakerMean(bands: 2)
        XCTAssertNil(mean.mean())
        XCTAssertEqual(mean.mean(prior: [1, 1], priorFrames: 10), [1, 1])
        for _ in 0..<10 { mean.add(frame: [3, -1]) }
        XCTAssertEqual(mean.mean(prior: [1, 1], priorFrames: 10), [2, 0])
        XCTAssertEqual(mean.mean(), [3, -1])
    }

    func testSilenceHasNoRegionAndNoVoice() {
        var energies: [Float] = []
        EnergyMeter().process([Float](repeating: 0, count: 16_000), into: &energies)
        XCTAssertNil(SpeechActivity().region(energies: energies, sampleCount: 16_000))
        XCTAssertFalse(SpeechActivity().hasVoice(energies))
    }

    func testFilterbankPeaksAtOneAndCoversTheRange() {
        let filters = melFilterbank(FeatureParameters())
        XCTAssertEqual(filters.count, 40)
        for f in filters { XCTAssertLessThanOrEqual(f.weights.max()!, 1.0001) }
        XCTAssertLessThan(filters.first!.first, 3)      // 50 Hz is bin 1.6
        XCTAssertGreaterThan(filters.last!.first, 200)  // the top filter ends at 8 kHz
    }

    func testResamplerKeepsDurationAndTone() throws {
        // 1 s of 1 kHz at 44.1 kHz -> 16 kHz: about 16000 samples, still a 1 kHz tone.
        let tone = (0..<44_100).map { Float(sin(2 * Double.pi * 1000 * Double($0) / 44_100)) * 0.5 }
        let r = try Resampler(inputRate: 44_100, outputRate: 16_000)
        var out: [Float] = []
        for chunk in stride(from: 0, to: tone.count, by: 1000) { try r.process(tone[chunk..<min(chunk + 1000, tone.count)], into: &out) }
        try r.flush(into: &out)
        XCTAssertEqual(Double(out.count), 16_000, accuracy: 2)
        let crossings = zip(out.dropFirst(), out).filter { $0.0 >= 0 && $0.1 < 0 }.count
        XCTAssertEqual(Double(crossings), 1000, accuracy: 3)
    }

    func testSameRateIsBitExact() throws {
        let x: [Float] = [0.1, -0.2, 0.3]
        var out: [Float] = []
        try Resampler(inputRate: 16_000, outputRate: 16_000).process(x[...], into: &out)
        XCTAssertEqual(out, x)
    }
}

import Foundation
@testable import Model
import XCTest

/// The Swift Whisper encoder must reproduce the PyTorch rebuild (Training/whisper.py), itself
/// checked against CTranslate2, on the golden input: every layer's pooled statistics and frames.
final class WhisperEncoderTests: XCTestCase {
    static let encoderPath = "/usr/local/share/emotion-monitor/whisper-base.bin"
    let golden = try! SafeTensors(contentsOf: Bundle.module.url(forResource: "Fixtures/whisper-base.golden", withExtension: "safetensors")!)

    func encoder(layers: Int? = nil) throws -> WhisperEncoder {
        guard FileManager.default.fileExists(atPath: Self.encoderPath) else {
            throw XCTSkip("needs the Whisper base encoder at \(Self.encoderPath) (./setup.sh installs it)")
        }
        return WhisperEncoder(weights: try WhisperEncoderWeights(model: CTranslate2Model(path: Self.encoderPath), layers: layers))
    }

    func testEveryLayerMatchesPyTorch() throws {
        let encoder = try encoder()
        XCTAssertEqual([encoder.weights.width, encoder.weights.heads, encoder.weights.layers], [512, 8, 6])
        let mel = golden.tensors["mel"]!, reference = golden.tensors["pooled"]!
        let pooled = mel.values.withUnsafeBufferPointer { encoder.pooledStates(mel: $0, frames: mel.shape[1]) }
        XCTAssertEqual([pooled.count, pooled[0].count], reference.shape)
        for (layer, values) in pooled.enumerated() {
            let expected = reference.values[(layer * 1024)..<((layer + 1) * 1024)]
            let scale = expected.map(abs).max()!
            let gap = zip(values, expected).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(gap / scale, 1e-4, "layer \(layer): largest difference relative to the largest value")
        }
        var frames: [Float] = []
        var state = 0
        mel.values.withUnsafeBufferPointer {
            encoder.forEachState(mel: $0, frames: mel.shape[1]) { s in
                if state == 6 { frames = Array(s.prefix(8 * 512)) }
                state += 1
            }
        }
        let last = golden.tensors["last_block"]!.values
        XCTAssertLessThan(zip(frames, last).map { abs($0 - $1) }.max()! / last.map(abs).max()!, 1e-4)
    }

    /// Keeping fewer blocks computes the same early layers, and stops there.
    func testFewerLayersGiveTheSameEarlyStates() throws {
        let full = try encoder(), early = try encoder(layers: 3)
        let mel = golden.tensors["mel"]!
        let a = mel.values.withUnsafeBufferPointer { full.pooledStates(mel: $0, frames: mel.shape[1]) }
        let b = mel.values.withUnsafeBufferPointer { early.pooledStates(mel: $0, frames: mel.shape[1]) }
        XCTAssertEqual(b.count, 4, "the input to block 0 and three blocks, no final norm")
        XCTAssertEqual(Array(a.prefix(4)), b)
    }

    /// A batch is each of its windows run alone: the shared sgemms and per-window attention keep
    /// every window to its own frames.
    func testABatchGivesEachWindowWhatItGetsAlone() throws {
        let encoder = try encoder()
        let mel = golden.tensors["mel"]!, t = mel.shape[1]
        let other = (0..<80).flatMap { band in mel.values[(band * t)..<((band + 1) * t)].reversed() }  // time reversed
        let alone = [mel.values, other].map { m in m.withUnsafeBufferPointer { encoder.pooledStates(mel: $0, frames: t) } }
        let batch = (mel.values + other + mel.values).withUnsafeBufferPointer { encoder.pooledStates(mel: $0, windows: 3, frames: t) }
        XCTAssertEqual(batch.count, 3)
        for (window, expected) in zip(batch, [alone[0], alone[1], alone[0]]) {
            let gap = zip(window.joined(), expected.joined()).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(gap, 1e-4, "largest difference from the window run alone")
        }
        XCTAssertGreaterThan(zip(batch[0].joined(), batch[1].joined()).map { abs($0 - $1) }.max()!, 0.1, "the two inputs differ")
    }

    /// The encoder keeps its scratch between calls: a shorter input after a longer one, then the longer
    /// again, give exactly what a fresh encoder gives them.
    func testNothingCarriesOverFromOneInputToTheNext() throws {
        let reused = try encoder()
        let mel = golden.tensors["mel"]!, t = mel.shape[1], short = t / 2 + 1
        let shortMel = (0..<80).flatMap { band in mel.values[(band * t)..<(band * t + short)] }  // band-major
        func pooled(_ encoder: WhisperEncoder, _ values: [Float], _ frames: Int) -> [[Float]] {
            values.withUnsafeBufferPointer { encoder.pooledStates(mel: $0, frames: frames) }
        }
        let first = pooled(reused, mel.values, t)
        XCTAssertTrue(pooled(reused, shortMel, short) == pooled(WhisperEncoder(weights: reused.weights), shortMel, short),
                      "the shorter input after the longer differs from a fresh encoder's")
        XCTAssertTrue(pooled(reused, mel.values, t) == first, "the longer input again differs from its first result")
    }

    /// The softmax's exp, rounded by bit tricks so its loop vectorises: within 2 ulp of libm's on the
    /// whole range a softmax gives it (x <= 0), the floor e^-87 below -87, and never a denormal.
    func testFastExpAgreesWithExpWhereTheSoftmaxUsesIt() {
        for i in 0...174_000 {  // 0 down to -87
            let x = -Float(i) / 2000
            XCTAssertEqual(fastExp(x), exp(x), accuracy: 2 * exp(x).ulp, "x = \(x)")
        }
        XCTAssertEqual(fastExp(-87), exp(-87), accuracy: 2 * exp(Float(-87)).ulp)
        XCTAssertEqual(fastExp(-1000), fastExp(-87))
        XCTAssertTrue(fastExp(-.infinity).isNormal)
    }

    func testAFileThatIsNotCTranslate2IsAClearError() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("not-ct2-\(getpid()).bin")
        try Data([6, 0, 0, 0, 200, 0, 65]).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        XCTAssertThrowsError(try CTranslate2Model(path: url.path)) { XCTAssertTrue("\($0)".contains("truncated"), "\($0)") }
        XCTAssertThrowsError(try CTranslate2Model(path: "/nonexistent/model.bin")) { XCTAssertTrue("\($0)".contains("no such file"), "\($0)") }
    }
}

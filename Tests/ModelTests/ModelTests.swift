import Features
import Foundation
@testable import Model
import XCTest

/// The Swift CNN must reproduce PyTorch's logits for the shipped model on golden inputs.
final class ModelTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
    static let cardURL = root.appendingPathComponent("Models/emotion-cnn.json")

    /// Every shipped model (Models/NAME.json) has golden inputs and PyTorch's outputs in Fixtures/NAME.golden.
    func testReproducesPyTorchLogits() throws {
        let cards = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("Models").path)
            .filter { $0.hasSuffix(".json") }.sorted()
        XCTAssertFalse(cards.isEmpty)
        var skipped: [String] = []
        for name in cards {
            let model = String(name.dropLast(5)), url = Self.root.appendingPathComponent("Models/\(name)")
            let golden = try SafeTensors(contentsOf: Bundle.module.url(forResource: "Fixtures/\(model).golden", withExtension: "safetensors")!)
            if let encoder = try ModelCard.load(from: url).encoder {
                guard FileManager.default.fileExists(atPath: encoder.file) else { skipped.append("\(model) needs \(encoder.file)"); continue }
                try checkEncoderGolden(ModelWeights(cardURL: url), golden)
            } else {
                try checkGolden(ModelWeights(cardURL: url), golden)
            }
        }
        if !skipped.isEmpty { throw XCTSkip(skipped.joined(separator: "; ") + " (./setup.sh installs it); the others passed") }
    }

    /// An encoder model's fixture: PyTorch's probabilities (Training/train_head.py --export) for 3 s of a test clip.
    private func checkEncoderGolden(_ weights: ModelWeights, _ golden: SafeTensors) throws {
        let file = try AudioFile(path: Self.root.appendingPathComponent("Tests/Clips/Actor_02/03-01-03-02-01-01-02.flac").path)
        var samples: [Float] = []
        while try file.read(maxFrames: 1 << 16, into: &samples) > 0 {}
        let window = Array(samples[8000..<(8000 + weights.card.windowSamples)])
        let p = window.withUnsafeBufferPointer { EmotionClassifier(weights: weights).predict(samples: $0, count: 1)[0] }
        for (name, values) in [("emotion", p.emotion), ("sex", p.sex)] {
            let expected = golden.tensors[name]!.values
            XCTAssertEqual(values.count, expected.count)
            for (a, b) in zip(values, expected) { XCTAssertEqual(a, b, accuracy: 1e-3, "\(name): \(values) against PyTorch's \(expected)") }
        }
        // Log-probabilities pin the heads where a probability has saturated (a clear voice's sex).
        func logSoftmax(_ logits: [Float]) -> [Float] {
            let top = logits.max()!, sum = logits.map { exp($0 - top) }.reduce(0, +)
            return logits.map { $0 - top - log(sum) }
        }
        for (name, logits) in [("emotion_logprob", p.emotionLogits), ("sex_logprob", p.sexLogits)] {
            let (values, expected) = (logSoftmax(logits), golden.tensors[name]!.values)
            XCTAssertEqual(values.count, expected.count)
            for (a, b) in zip(values, expected) { XCTAssertEqual(a, b, accuracy: 0.01 + 0.005 * abs(b), "\(name): \(values) against PyTorch's \(expected)") }
        }
        // The heads trained on encoder outputs cached as float16: a head that heard differences below that
        // resolution would turn the program's float32 rounding into its answer (a held-out SAVEE head once
        // called every man female here and 99 % of them male in PyTorch). Rounding the window's pooled
        // states to float16 must move no logit by more than a few hundredths.
        var mel: [Float] = []
        window.withUnsafeBufferPointer { WhisperLogMel().compute($0, into: &mel) }
        let pooled = Array(mel.withUnsafeBufferPointer {
            WhisperEncoder(weights: weights.encoder!).pooledStates(mel: $0, frames: $0.count / WhisperLogMel.melBands)
        }.prefix(weights.card.encoder!.states).joined())
        for (name, head) in [("emotion", weights.emotion), ("sex", weights.sex)] {
            XCTAssertEqual(head.inputs, pooled.count)
            for o in 0..<head.outputs {
                let row = head.weight[(o * head.inputs)..<((o + 1) * head.inputs)]
                let shift = zip(row, pooled).reduce(Float(0)) { $0 + $1.0 * (Float(Float16($1.1)) - $1.1) }
                XCTAssertLessThan(abs(shift), 0.05, "\(name) logit \(o) moves by \(shift) when its input is rounded to float16")
            }
        }
    }

    private func checkGolden(_ weights: ModelWeights, _ golden: SafeTensors) throws {
        let windows = golden.tensors["windows"]!
        XCTAssertEqual(Array(windows.shape.dropFirst()), [weights.card.windowFrames, weights.card.features.melBands])
        // A speaker-normalised model's golden inputs come with one speaker mean per window.
        let means = golden.tensors["speaker_means"].map { t in (0..<t.shape[0]).map { Array(t.values[($0 * t.shape[1])..<(($0 + 1) * t.shape[1])]) } } ?? []
        XCTAssertEqual(means.isEmpty, weights.card.speakerNormalisation == nil)
        // A sex head that hears pitch gets each window's pitch statistics, as PyTorch computed them.
        let pitch = golden.tensors["pitch"].map { t in (0..<t.shape[0]).map { Array(t.values[($0 * t.shape[1])..<(($0 + 1) * t.shape[1])]) } } ?? []
        XCTAssertEqual(pitch.isEmpty, weights.card.sexPitchInputs == 0)
        let predictions = windows.values.withUnsafeBufferPointer {
            EmotionClassifier(weights: weights).predict(frames: $0, count: windows.shape[0], speakerMeans: means, pitch: pitch)
        }
        let emotion = golden.tensors["emotion_logits"]!.values, sex = golden.tensors["sex_logits"]!.values
        for (b, p) in predictions.enumerated() {
            for (i, v) in p.emotionLogits.enumerated() { XCTAssertEqual(v, emotion[b * 8 + i], accuracy: 1e-4) }
            for (i, v) in p.sexLogits.enumerated() { XCTAssertEqual(v, sex[b * 2 + i], accuracy: 1e-4) }
        }
        // One at a time gives the same as the batch.
        let single = windows.values.withUnsafeBufferPointer {
            EmotionClassifier(weights: weights).predict(frames: $0, count: 1, speakerMeans: Array(means.prefix(1)), pitch: Array(pitch.prefix(1)))
        }
        for (a, b) in zip(single[0].emotionLogits, predictions[0].emotionLogits) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testTruncatedWeightsAreAClearError() throws {
        let dir = try temporaryCopyOfModel()
        let weights = dir.appendingPathComponent("emotion-cnn.safetensors")
        let data = try Data(contentsOf: weights)
        try data.prefix(data.count / 2).write(to: weights)
        XCTAssertThrowsError(try ModelWeights(cardURL: dir.appendingPathComponent("emotion-cnn.json"))) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
    }

    func testGarbageWeightsAndMissingFilesAreClearErrors() throws {
        let dir = try temporaryCopyOfModel()
        try Data("not a model".utf8).write(to: dir.appendingPathComponent("emotion-cnn.safetensors"))
        XCTAssertThrowsError(try ModelWeights(cardURL: dir.appendingPathComponent("emotion-cnn.json"))) { error in
            XCTAssertTrue("\(error)".contains("corrupt model file"), "\(error)")
        }
        XCTAssertThrowsError(try ModelWeights(cardURL: dir.appendingPathComponent("nope.json"))) { error in
            XCTAssertTrue("\(error)".contains("no such file"), "\(error)")
        }
    }

    func testHostileHeadersAreErrorsNotCrashes() throws {
        let dir = try temporaryCopyOfModel()
        let weights = dir.appendingPathComponent("emotion-cnn.safetensors")
        for header in [#"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[4,0]}}"#,
                       #"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}"#,
                       #"{"x":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}"#, "[1, 2]"] {
            var data = Data()
            withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
            data.append(contentsOf: Array(header.utf8))
            data.append(contentsOf: [UInt8](repeating: 0, count: 16))
            try data.write(to: weights)
            XCTAssertThrowsError(try ModelWeights(cardURL: dir.appendingPathComponent("emotion-cnn.json"))) { error in
                XCTAssertTrue("\(error)".contains("corrupt model file"), "\(error)")
            }
        }
    }

    func testCardThatDisagreesWithWeightsIsAMismatch() throws {
        let dir = try temporaryCopyOfModel()
        let cardURL = dir.appendingPathComponent("emotion-cnn.json")
        var card = try JSONSerialization.jsonObject(with: Data(contentsOf: cardURL)) as! [String: Any]
        var architecture = card["architecture"] as! [String: Any]
        architecture["channels"] = [16, 32, 64, 128]
        card["architecture"] = architecture
        try JSONSerialization.data(withJSONObject: card).write(to: cardURL)
        XCTAssertThrowsError(try ModelWeights(cardURL: cardURL)) { error in
            XCTAssertTrue("\(error)".contains("does not match"), "\(error)")
        }
    }

    func testCardWithBadFeatureParametersIsRejected() throws {
        let dir = try temporaryCopyOfModel()
        let cardURL = dir.appendingPathComponent("emotion-cnn.json")
        let text = try String(contentsOf: cardURL, encoding: .utf8).replacingOccurrences(of: "\"fftSize\": 512", with: "\"fftSize\": 128")
        try text.write(to: cardURL, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ModelCard.load(from: cardURL)) { error in
            XCTAssertTrue("\(error)".contains("window length"), "\(error)")
        }
    }

    private func temporaryCopyOfModel() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("model-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for name in ["emotion-cnn.json", "emotion-cnn.safetensors"] {
            try FileManager.default.copyItem(at: Self.root.appendingPathComponent("Models/\(name)"), to: dir.appendingPathComponent(name))
        }
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }
}

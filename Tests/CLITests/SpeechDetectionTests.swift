import Foundation
import XCTest

/// Only speech gets an emotion: noise, hum, tones, fans and DC at speech-like levels pass the energy
/// gate but not Silero VAD.
final class SpeechDetectionTests: XCTestCase {
    let angry = CLI.clip("03-01-05-02-01-01-01")

    /// 4 s fixtures made with sox, each loud enough for the -60 dBFS energy gate.
    func noises(in dir: URL) throws -> [URL] {
        let recipes: [(String, [String])] = [
            ("pink", ["synth", "4", "pinknoise", "vol", "0.3"]),
            ("brown", ["synth", "4", "brownnoise", "vol", "0.3"]),
            ("white", ["synth", "4", "whitenoise", "vol", "0.1"]),
            ("hum", ["synth", "4", "sine", "50", "sine", "100", "sine", "150", "channels", "1", "vol", "0.3"]),
            ("tone", ["synth", "4", "sine", "440", "vol", "0.3"]),
            ("fan", ["synth", "4", "whitenoise", "lowpass", "300", "vol", "0.8"]),
            ("dc", ["synth", "4", "dcshift", "0.3"]),
            ("silence", ["trim", "0", "4"]),
        ]
        return try recipes.map { name, effects in
            let url = dir.appendingPathComponent("\(name).wav")
            try CLI.sox(["-n", "-r", "16000", "-c", "1", "-b", "16", url.path] + effects)
            return url
        }
    }

    func testNoiseHumToneFanDCAndSilenceHaveNoSpeech() throws {
        let dir = try temporaryDirectory(self)
        let files = try noises(in: dir)
        let run = try CLI.run(["analyze", "--format", "jsonl", "--segments"] + files.map(\.path))
        XCTAssertNotEqual(run.status, 0, "no file had speech")
        XCTAssertEqual(run.lines.count, files.count)
        for line in run.lines {
            let result = json(line)
            XCTAssertNil(result["label"], "\(result)")
            XCTAssertTrue((result["error"] as? String ?? "").contains("no speech to classify"), "\(result)")
        }
        // The energy gate alone labels most of them: what the detector is for.
        let energy = try CLI.run(["analyze", "--format", "jsonl", "--vad", "energy"] + files.map(\.path))
        XCTAssertGreaterThanOrEqual(energy.lines.filter { json($0)["label"] != nil }.count, 6, energy.stdout)
    }

    func testListenToNoiseReportsOnlySilence() throws {
        let dir = try temporaryDirectory(self)
        let files = try noises(in: dir)
        let run = try CLI.run(["listen", "--headless", "--fast", "--replay"] + files.map(\.path))
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertGreaterThan(run.lines.count, Int(25 / CLI.hopSeconds), "one event per hop")
        for line in run.lines {
            let event = json(line)
            XCTAssertEqual(event["voice"] as? Bool, false, "\(event)")
            XCTAssertEqual(event["label"] as? String, "silence", "\(event)")
        }
    }

    func testCalibrateOnNoiseRefusesWithTheSpeechItHeard() throws {
        let dir = try temporaryDirectory(self)
        let files = try noises(in: dir)
        let profile = dir.appendingPathComponent("me.json")
        let run = try CLI.run(["calibrate", "--model", "Models/emotion-cnn-sn.json", "--profile", profile.path, "--replay"] + files.map(\.path))
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("heard only 0.0 s of speech"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: profile.path))
    }

    func testSpeechInPinkNoiseAt10dBIsStillHeard() throws {
        let dir = try temporaryDirectory(self)
        let raw = dir.appendingPathComponent("speech.raw"), noise = dir.appendingPathComponent("pink.raw")
        try CLI.sox([angry, "-t", "raw", "-e", "floating-point", "-b", "32", raw.path])
        try CLI.sox(["-n", "-r", "16000", "-c", "1", "-t", "raw", "-e", "floating-point", "-b", "32", noise.path, "synth", "5", "pinknoise"])
        let speech = try readRawFloats(raw)
        let pink = try readRawFloats(noise)
        func power(_ x: [Float]) -> Float { x.reduce(0) { $0 + $1 * $1 } / Float(x.count) }
        let gain = (power(speech) / power(Array(pink.prefix(speech.count))) / 10).squareRoot()
        let mixed = dir.appendingPathComponent("noisy.wav")
        try writeFloatWav(mixed, samples: zip(speech, pink).map { $0 + gain * $1 }, rate: 16_000)
        let run = try CLI.run(["analyze", "--format", "jsonl", "--segments", mixed.path])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let result = json(run.stdout)
        XCTAssertEqual(result["label"] as? String, "angry", "\(result)")
        let segments = result["segments"] as? [[String: Any]] ?? []
        XCTAssertFalse(segments.isEmpty)
        XCTAssertTrue(segments.allSatisfy { $0["voice"] as? Bool == true }, "\(segments)")
    }

    func testAMissingOrCorruptDetectorModelIsOneLineError() throws {
        let dir = try temporaryDirectory(self)
        let junk = dir.appendingPathComponent("junk.onnx")
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: junk)
        for (model, expected) in [(dir.appendingPathComponent("absent.onnx").path, "not found"), (junk.path, "not a Silero VAD ONNX model"),
                                  (dir.path, "not a regular file")] {
            let config: [String: Any] = ["model": CLI.root.appendingPathComponent("Models/emotion-cnn.json").path,
                                         "speech": ["detector": ["model": model]]]
            let file = dir.appendingPathComponent("config.json")
            try JSONSerialization.data(withJSONObject: config).write(to: file)
            let run = try CLI.run(["analyze", "--config", file.path, angry])
            XCTAssertNotEqual(run.status, 0)
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
            XCTAssertTrue(run.stderr.contains("voice-activity model") && run.stderr.contains(expected), run.stderr)
            // The energy gate alone needs no model.
            XCTAssertEqual(try CLI.run(["analyze", "--config", file.path, "--vad", "energy", angry]).status, 0)
        }
    }
}

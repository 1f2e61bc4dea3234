import Foundation
import XCTest

/// Speaker normalisation needs a model trained with it: the speaker-normalised variant in Models/.
final class CalibrateTests: XCTestCase {
    static let model = "Models/emotion-cnn-sn.json"
    let neutral = ["03-01-01-01-01-01-03", "03-01-01-01-02-01-03", "03-01-01-01-01-02-03", "03-01-01-01-02-02-03"].map(CLI.clip)
    let angry = CLI.clip("03-01-05-02-01-01-03")

    func testReplayCalibrationWritesAProfileThatAnalyzeAndListenUse() throws {
        let profile = try temporaryDirectory(self).appendingPathComponent("me.json")
        let run = try CLI.run(["calibrate", "--model", Self.model, "--profile", profile.path, "--replay"] + neutral)
        XCTAssertEqual(run.status, 0, run.stderr)
        let written = json(try String(contentsOf: profile, encoding: .utf8))
        XCTAssertEqual((written["mean"] as? [Double])?.count, 40)
        XCTAssertGreaterThan(written["speechSeconds"] as! Double, 3)
        XCTAssertEqual((written["sex"] as? [String: Any])?["label"] as? String, "male", "actor 03 is male")
        XCTAssertNotNil(written["features"])

        let analysed = try CLI.run(["analyze", "--model", Self.model, "--format", "jsonl", "--profile", profile.path, angry])
        XCTAssertEqual(analysed.status, 0, analysed.stderr)
        XCTAssertNotNil(json(analysed.stdout)["label"])

        let live = try CLI.run(["listen", "--model", Self.model, "--replay", angry, "--fast", "--headless", "--profile", profile.path])
        XCTAssertEqual(live.status, 0, live.stderr)
        XCTAssertTrue(live.lines.allSatisfy { json($0)["norm"] as? String == "profile" })
        let online = try CLI.run(["listen", "--model", Self.model, "--replay", angry, "--fast", "--headless"])
        XCTAssertTrue(online.lines.allSatisfy { json($0)["norm"] as? String == "online" })
    }

    /// With the defaults (no --model), calibration and --profile take the config's speaker-normalised
    /// model, each saying so in one line, and the profile is used.
    func testCalibrationWorksWithTheDefaults() throws {
        let profile = try temporaryDirectory(self).appendingPathComponent("me.json")
        let run = try CLI.run(["calibrate", "--profile", profile.path, "--replay"] + neutral)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("wrote \(profile.path)"), run.stdout)
        let note = run.stderr.split(separator: "\n").filter { $0.contains("emotion-cnn-sn") }
        XCTAssertEqual(note.count, 1, run.stderr)
        XCTAssertTrue(note[0].contains("speaker-normalised"), run.stderr)

        let analysed = try CLI.run(["analyze", "--format", "jsonl", "--profile", profile.path, angry])
        XCTAssertEqual(analysed.status, 0, analysed.stderr)
        XCTAssertNotNil(json(analysed.stdout)["label"], analysed.stdout)
        XCTAssertTrue(analysed.stderr.contains("using emotion-cnn-sn"), analysed.stderr)
        let live = try CLI.run(["listen", "--replay", angry, "--fast", "--headless", "--profile", profile.path])
        XCTAssertEqual(live.status, 0, live.stderr)
        XCTAssertTrue(!live.lines.isEmpty && live.lines.allSatisfy { json($0)["norm"] as? String == "profile" }, live.stdout)

        // Without a profile the default model stays, and says nothing.
        let plain = try CLI.run(["analyze", "--format", "jsonl", angry])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertFalse(plain.stderr.contains("emotion-cnn-sn"), plain.stderr)
        // A model named on the command line is the user's choice: no switch.
        let named = try CLI.run(["calibrate", "--model", "Models/emotion-cnn.json", "--profile", profile.path, "--replay"] + neutral)
        XCTAssertNotEqual(named.status, 0)
        XCTAssertTrue(named.stderr.contains("not speaker-normalised"), named.stderr)
    }

    /// The microphone path, through the real ALSA capture code against a PCM playing actor 03's
    /// neutral clips. That PCM delivers as fast as it can, so the ring is made big enough to hold them all.
    func testMicrophoneCalibrationStopsAtTheRequestedSpeech() throws {
        let dir = try temporaryDirectory(self)
        let raw = dir.appendingPathComponent("mic.raw"), profile = dir.appendingPathComponent("me.json")
        try CLI.sox(neutral + ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", "48000", raw.path])
        let run = try CLI.run(["calibrate", "--config", try bigRingConfig(in: dir), "--device", "testcap", "--seconds", "4",
                               "--profile", profile.path], environment: try CLI.filePCM(playing: raw, in: dir))
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("Read this aloud"), run.stdout)
        XCTAssertTrue(run.stdout.contains(" of 4 s"), "shows the seconds of speech heard: \(run.stdout)")
        let written = json(try String(contentsOf: profile, encoding: .utf8))
        XCTAssertEqual(written["speechSeconds"] as! Double, 4, accuracy: 0.2, "stops at --seconds of speech")
        XCTAssertEqual(written["source"] as? String, "device testcap")
        XCTAssertEqual((written["sex"] as? [String: Any])?["label"] as? String, "male")
    }

    /// A silent microphone (the same PCM playing zeros) gives up at --timeout and writes nothing.
    func testSilentMicrophoneFailsAfterTheTimeout() throws {
        let dir = try temporaryDirectory(self)
        let raw = dir.appendingPathComponent("silence.raw"), profile = dir.appendingPathComponent("me.json")
        try Data(count: 48_000 * 4).write(to: raw)
        let run = try CLI.run(["calibrate", "--config", try bigRingConfig(in: dir), "--device", "testcap", "--timeout", "1",
                               "--profile", profile.path], environment: try CLI.filePCM(playing: raw, in: dir))
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("heard only 0.0 s of speech"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: profile.path))
    }

    /// A config of two overrides: the speaker-normalised model and a 32 s ring.
    private func bigRingConfig(in dir: URL) throws -> String {
        let config: [String: Any] = ["listen": ["ringSeconds": 32], "model": CLI.root.appendingPathComponent(Self.model).path]
        let url = dir.appendingPathComponent("config.json")
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        return url.path
    }

    /// Speaker means are gated as the model's training means were, whatever --vad-threshold says.
    func testTheVoiceThresholdFlagDoesNotChangeTheProfile() throws {
        let dir = try temporaryDirectory(self)
        let a = dir.appendingPathComponent("a.json"), b = dir.appendingPathComponent("b.json")
        XCTAssertEqual(try CLI.run(["calibrate", "--model", Self.model, "--profile", a.path, "--replay"] + neutral).status, 0)
        XCTAssertEqual(try CLI.run(["calibrate", "--model", Self.model, "--vad-threshold", "-35", "--profile", b.path,
                                    "--replay"] + neutral).status, 0)
        let (x, y) = (json(try String(contentsOf: a, encoding: .utf8)), json(try String(contentsOf: b, encoding: .utf8)))
        XCTAssertEqual(x["mean"] as? [Double], y["mean"] as? [Double])
        XCTAssertEqual(x["speechSeconds"] as? Double, y["speechSeconds"] as? Double)
    }

    func testTooLittleSpeechFailsAndKeepsTheOldProfile() throws {
        let dir = try temporaryDirectory(self)
        let profile = dir.appendingPathComponent("me.json"), silence = dir.appendingPathComponent("silence.wav")
        try CLI.sox(["-n", "-r", "16000", "-c", "1", "-b", "16", silence.path, "trim", "0", "20"])
        try Data("old profile".utf8).write(to: profile)
        let run = try CLI.run(["calibrate", "--model", Self.model, "--profile", profile.path, "--replay", silence.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("heard only 0.0 s of speech"), run.stderr)
        XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
        XCTAssertEqual(try String(contentsOf: profile, encoding: .utf8), "old profile")
        // One short clip is under 3 s of speech too.
        let short = try CLI.run(["calibrate", "--model", Self.model, "--profile", profile.path, "--replay", neutral[0]])
        XCTAssertTrue(short.stderr.contains("calibration needs at least 3 s"), short.stderr)
    }

    func testCorruptOrMismatchedProfilesAreRejectedBeforeAnyAudio() throws {
        let dir = try temporaryDirectory(self)
        let truncated = dir.appendingPathComponent("truncated.json"), mismatched = dir.appendingPathComponent("other.json")
        let good = dir.appendingPathComponent("good.json")
        XCTAssertEqual(try CLI.run(["calibrate", "--model", Self.model, "--profile", good.path, "--replay"] + neutral).status, 0)
        let text = try String(contentsOf: good, encoding: .utf8)
        try text.prefix(text.count / 2).write(to: truncated, atomically: true, encoding: .utf8)
        try text.replacingOccurrences(of: "\"melBands\" : 40", with: "\"melBands\" : 64")
            .write(to: mismatched, atomically: true, encoding: .utf8)
        // Loadable but implausible: a future version, a negative duration, a huge mean.
        func variant(_ name: String, _ change: (inout [String: Any]) -> Void) throws -> URL {
            var object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
            change(&object)
            let url = dir.appendingPathComponent(name)
            try JSONSerialization.data(withJSONObject: object).write(to: url)
            return url
        }
        let future = try variant("future.json") { $0["version"] = 99 }
        let negative = try variant("negative.json") { $0["speechSeconds"] = -5 }
        let huge = try variant("huge.json") { var m = $0["mean"] as! [Double]; m[0] = 3e38; $0["mean"] = m }
        for (profile, message) in [(truncated, "not a valid profile"), (mismatched, "other front-end parameters"),
                                   (future, "version 99"), (negative, "out of range"), (huge, "out of range")] {
            // The audio path does not exist: the profile must be refused before it is looked at.
            let run = try CLI.run(["analyze", "--model", Self.model, "--profile", profile.path, "/nonexistent.wav"])
            XCTAssertNotEqual(run.status, 0)
            XCTAssertTrue(run.stderr.contains(message), run.stderr)
            XCTAssertFalse(run.stdout.contains("nonexistent"), run.stdout)
        }
    }

    func testEvaluateScoresTheSameClipsInEveryCalibrationMode() throws {
        let ravdess = try CLI.corpus("ravdess")
        var clips: [Int] = []
        for mode in ["none", "online", "neutral"] {
            let run = try CLI.run(["evaluate", "--model", Self.model, ravdess.path, "--actors", "3", "--calibration", mode, "--format", "json"])
            XCTAssertEqual(run.status, 0, run.stderr)
            clips.append(json(run.stdout)["clips"] as! Int)
        }
        XCTAssertEqual(clips, [56, 56, 56], "each mode scores actor 03's non-neutral clips")
    }
}

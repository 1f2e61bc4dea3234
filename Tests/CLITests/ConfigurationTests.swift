import Foundation
import XCTest

/// Defaults live in the code; a config file holds only overrides, and a misspelt key is refused.
final class ConfigurationTests: XCTestCase {
    let angry = CLI.clip("03-01-05-02-01-01-01")

    /// The checkout has no config.json: the program runs on its defaults and its own models.
    func testWithoutAConfigFileTheDefaultsApply() throws {
        try XCTSkipIf(FileManager.default.fileExists(atPath: "/etc/emotion-monitor/config.json"), "this machine has an installed config")
        let run = try CLI.run(["config"], environment: ["EMOTION_MONITOR_CONFIG": ""])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("no config file"), run.stderr)
        let config = json(run.stdout)
        XCTAssertEqual(config["model"] as? String, CLI.root.appendingPathComponent("Models/emotion-whisper.json").path)
        XCTAssertEqual(config["profileModel"] as? String, CLI.root.appendingPathComponent("Models/emotion-cnn-sn.json").path)
        XCTAssertEqual((config["windows"] as? [String: Any])?["hopSeconds"] as? Double, 1)
        let detector = (config["speech"] as? [String: Any])?["detector"] as? [String: Any]
        XCTAssertEqual(detector?["model"] as? String, "/usr/local/share/emotion-monitor/silero_vad.onnx")
        let analysis = try CLI.run(["analyze", angry, "--model", "Models/emotion-cnn.json"])
        XCTAssertEqual(analysis.status, 0, analysis.stderr)
    }

    /// A file of two overrides changes those two and nothing else; its relative paths are its folder's;
    /// null turns the speech detector off; what `config` prints reads back as the same settings.
    func testAConfigHoldsOnlyItsOverrides() throws {
        let dir = try temporaryDirectory(self)
        let file = dir.appendingPathComponent("mine.json")
        try Data(#"{"windows": {"hopSeconds": 0.5}, "model": "cards/x.json", "speech": {"detector": null}}"#.utf8).write(to: file)
        let run = try CLI.run(["config", "--config", file.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        var (config, defaults) = (json(run.stdout), CLI.config)
        XCTAssertEqual(config["model"] as? String, dir.appendingPathComponent("cards/x.json").path)
        XCTAssertEqual((config["windows"] as? [String: Any])?["hopSeconds"] as? Double, 0.5)
        XCTAssertTrue((config["speech"] as? [String: Any])?["detector"] is NSNull)
        XCTAssertEqual((config["windows"] as? [String: Any])?["batchWindows"] as? Int, 16)
        for key in ["model", "windows", "speech"] { (config[key], defaults[key]) = (nil, nil) }
        XCTAssertEqual(NSDictionary(dictionary: config), NSDictionary(dictionary: defaults), "the keys not overridden keep their defaults")

        let printed = dir.appendingPathComponent("printed.json")
        try Data(run.stdout.utf8).write(to: printed)
        XCTAssertEqual(try CLI.run(["config", "--config", printed.path]).stdout, run.stdout)
    }

    /// A misspelt key would silently do nothing: it is a one-line error naming it.
    func testAnUnknownKeyIsRefusedByName() throws {
        let dir = try temporaryDirectory(self)
        let file = dir.appendingPathComponent("config.json")
        for (text, key) in [(#"{"speech": {"treshold": -50}}"#, "speech.treshold"), (#"{"hop": 1}"#, "hop"),
                            (#"{"speech": {"detector": {"treshold": 0.5}}}"#, "speech.detector.treshold")] {
            try Data(text.utf8).write(to: file)
            let run = try CLI.run(["analyze", angry, "--config", file.path])
            XCTAssertNotEqual(run.status, 0)
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
            XCTAssertTrue(run.stderr.contains("unknown key '\(key)'"), run.stderr)
        }
    }
}

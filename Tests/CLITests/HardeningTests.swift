import Foundation
import XCTest

/// What a hostile or careless user tried: output paths that are not plain files, outputs that fail,
/// and numbers that used to trap. Each case is a one-line error or a correct write, never a crash,
/// a hang, a clobbered file or an exit status of 0 with the output lost.
final class HardeningTests: XCTestCase {
    let angry = CLI.clip("03-01-05-02-01-01-01")

    /// Runs `command` under bash with $EM set to the program: for redirections the Process API cannot make.
    func shell(_ command: String, timeout: Double = 120) throws -> Run {
        try CLI.run([], environment: [:], timeout: timeout, shellCommand: command)
    }

    // MARK: output files

    func testPlotToADeviceWritesThroughAndLeavesTheDevice() throws {
        let run = try CLI.run(["analyze", angry, "--plot", "/dev/null"])
        XCTAssertEqual(run.status, 0, run.stderr)
        var info = stat()
        XCTAssertEqual(stat("/dev/null", &info), 0)
        XCTAssertEqual(info.st_mode & S_IFMT, S_IFCHR, "/dev/null is still a character device")
    }

    func testPlotToStdoutReachesStdout() throws {
        let run = try shell("\"$EM\" analyze '\(angry)' --format jsonl --plot /dev/stdout")
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("<svg"), "the plot went to stdout")
    }

    func testOutputThroughASymlinkWritesTheTargetAndKeepsTheLink() throws {
        let dir = try temporaryDirectory(self)
        let target = dir.appendingPathComponent("real.svg"), link = dir.appendingPathComponent("link.svg")
        try Data("old".utf8).write(to: target)
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: target)
        let run = try CLI.run(["analyze", angry, "--plot", link.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link.path), target.path, "still a link")
        XCTAssertTrue(try String(contentsOf: target, encoding: .utf8).hasPrefix("<svg"), "the target was written")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "no temporary files left")
    }

    func testOutputToADirectoryOrADanglingLinkIsAnError() throws {
        let dir = try temporaryDirectory(self)
        var run = try CLI.run(["analyze", angry, "--plot", dir.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("is a directory"), run.stderr)
        let dangling = dir.appendingPathComponent("dangling.svg")
        try FileManager.default.createSymbolicLink(atPath: dangling.path, withDestinationPath: dir.appendingPathComponent("missing/x.svg").path)
        run = try CLI.run(["analyze", angry, "--plot", dangling.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("symbolic link to nothing"), run.stderr)
    }

    func testALongOutputNameIsWrittenWhole() throws {
        let dir = try temporaryDirectory(self)
        let name = dir.appendingPathComponent(String(repeating: "p", count: 250) + ".svg")
        let run = try CLI.run(["analyze", angry, "--plot", name.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: name.path))
    }

    // MARK: failed output is a failure

    func testAnalyzeAndEvaluateToAFullDeviceFail() throws {
        var run = try shell("\"$EM\" analyze '\(angry)' >/dev/full")
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("cannot write to standard output"), run.stderr)
        run = try shell("\"$EM\" evaluate '\(CLI.clips.path)' --actors 3 >/dev/full")
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("cannot write to standard output"), run.stderr)
    }

    func testHeadlessListenToAFullDeviceOrAFullLogStopsWithOneDiagnostic() throws {
        var run = try shell("\"$EM\" listen --headless --fast --replay '\(angry)' >/dev/full")
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("cannot write to standard output"), run.stderr)
        run = try CLI.run(["listen", "--headless", "--fast", "--replay", angry, angry, angry, "--log", "/dev/full"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("events are being lost"), run.stderr)
        XCTAssertEqual(run.stderr.components(separatedBy: "No space left").count - 1, 1, "said once: \(run.stderr)")
    }

    func testHeadlessListenIntoAClosedPipeStops() throws {
        // Real time and no --duration: without the fix it runs until the replay ends, writing nowhere.
        let files = Array(repeating: "'\(angry)'", count: 40).joined(separator: " ")
        let run = try shell("\"$EM\" listen --headless --replay \(files) | head -1", timeout: 60)
        XCTAssertEqual(run.lines.count, 1)
        XCTAssertTrue(run.stderr.contains("Broken pipe") || run.stderr.isEmpty, run.stderr)
    }

    /// A disk that fills mid-line (here a file-size limit) leaves only complete lines, and says so.
    func testAFullDiskLeavesOnlyCompleteLogLines() throws {
        let log = try temporaryDirectory(self).appendingPathComponent("events.jsonl")
        let files = Array(repeating: "'\(angry)'", count: 6).joined(separator: " ")
        let run = try shell("ulimit -f 8; exec \"$EM\" listen --headless --fast --replay \(files) --log '\(log.path)'")
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("events are being lost"), run.stderr)
        let text = try String(contentsOf: log, encoding: .utf8)
        XCTAssertFalse(text.isEmpty)
        XCTAssertTrue(text.hasSuffix("\n"), "the log ends with a complete line")
        for line in text.split(separator: "\n") { _ = json(String(line)) }
    }

    // MARK: numbers that trapped

    func testHugeNumbersAreOneLineErrors() throws {
        var run = try CLI.run(["calibrate", "--profile", "/tmp/never-written.json", "--device", "nope", "--seconds", "inf"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("--seconds"), run.stderr)
        run = try CLI.run(["evaluate", CLI.clips.path, "--actors", "1-9223372036854775807"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("--actors"), run.stderr)
        for bad in ["1--4", ",,,", "0"] {
            run = try CLI.run(["evaluate", CLI.clips.path, "--actors", bad])
            XCTAssertNotEqual(run.status, 0, bad)
            XCTAssertTrue(run.stderr.contains("--actors"), run.stderr)
        }
        run = try CLI.run(["analyze", angry, "--hop", "nan"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("--hop"), run.stderr)
        XCTAssertFalse(run.stderr.contains("config.json"), "a flag is not blamed on the config: \(run.stderr)")
    }

    func testHostileModelCardsAndWeightsAreOneLineErrors() throws {
        let dir = try temporaryDirectory(self)
        let models = CLI.root.appendingPathComponent("Models")
        let original = try JSONSerialization.jsonObject(with: Data(contentsOf: models.appendingPathComponent("emotion-cnn.json"))) as! [String: Any]
        try FileManager.default.copyItem(at: models.appendingPathComponent("emotion-cnn.safetensors"), to: dir.appendingPathComponent("emotion-cnn.safetensors"))
        func card(_ change: (inout [String: Any]) -> Void) throws -> String {
            var c = original
            change(&c)
            let url = dir.appendingPathComponent("card-\(UUID().uuidString).json")
            try JSONSerialization.data(withJSONObject: c).write(to: url)
            return url.path
        }
        let cases: [(String, (inout [String: Any]) -> Void)] = [
            ("windowSeconds", { $0["windowSeconds"] = 1e18 }),
            ("FFT size", { var f = $0["features"] as! [String: Any]; f["fftSize"] = 2147483648; $0["features"] = f }),
            ("FFT size", { var f = $0["features"] as! [String: Any]; f["fftSize"] = 1000; $0["features"] = f }),
            ("labels", { var l = $0["labels"] as! [String]; l[1] = l[0]; $0["labels"] = l }),
            ("labels", { var l = $0["labels"] as! [String]; l[1] = "a,b"; $0["labels"] = l }),
            // Pitch lags past the tracker's frame once trapped.
            ("16 kHz", { var f = $0["features"] as! [String: Any]; f["sampleRate"] = 48000; $0["features"] = f }),
        ]
        for (expected, change) in cases {
            let run = try CLI.run(["analyze", angry, "--model", try card(change)])
            XCTAssertNotEqual(run.status, 0, expected)
            XCTAssertTrue(run.stderr.contains(expected), run.stderr)
            XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)
        }

        // A NaN in the weights: refused at load, never a label without probabilities.
        let weights = dir.appendingPathComponent("emotion-cnn.safetensors")
        var data = try Data(contentsOf: weights)
        let nan = Float.nan.bitPattern.littleEndian
        withUnsafeBytes(of: nan) { data.replaceSubrange((data.count - 4)..<data.count, with: $0) }
        try data.write(to: weights)
        let run = try CLI.run(["analyze", angry, "--model", try card { _ in }])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("NaN"), run.stderr)
    }

    /// The default model needs the encoder setup.sh installs: without it, one line that says so and
    /// names the small model that needs none; an encoder card with the CNN's parts too is refused.
    func testAnEncoderCardWithoutItsEncoderIsAOneLineError() throws {
        let dir = try temporaryDirectory(self)
        let models = CLI.root.appendingPathComponent("Models")
        var card = try JSONSerialization.jsonObject(with: Data(contentsOf: models.appendingPathComponent("emotion-whisper.json"))) as! [String: Any]
        try FileManager.default.copyItem(at: models.appendingPathComponent("emotion-whisper.safetensors"),
                                         to: dir.appendingPathComponent("emotion-whisper.safetensors"))
        var encoder = card["encoder"] as! [String: Any]
        encoder["file"] = dir.appendingPathComponent("absent.bin").path
        card["encoder"] = encoder
        let url = dir.appendingPathComponent("card.json")
        try JSONSerialization.data(withJSONObject: card).write(to: url)
        let run = try CLI.run(["analyze", angry, "--model", url.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("speech encoder is not installed"), run.stderr)
        XCTAssertTrue(run.stderr.contains("Models/emotion-cnn.json"), run.stderr)
        XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)

        let cnn = try JSONSerialization.jsonObject(with: Data(contentsOf: models.appendingPathComponent("emotion-cnn.json"))) as! [String: Any]
        card["architecture"] = cnn["architecture"]
        try JSONSerialization.data(withJSONObject: card).write(to: url)
        let both = try CLI.run(["analyze", angry, "--model", url.path])
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.stderr.contains("not both"), both.stderr)
        XCTAssertEqual(both.stderr.split(separator: "\n").count, 1, both.stderr)
    }

    // MARK: inputs are never outputs

    func testAnOutputThatIsAnInputIsRefusedAndTheInputKept() throws {
        let dir = try temporaryDirectory(self)
        let audio = dir.appendingPathComponent("take.flac"), link = dir.appendingPathComponent("link.svg")
        try FileManager.default.copyItem(atPath: angry, toPath: audio.path)
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: audio)
        let config = dir.appendingPathComponent("config.json")
        let settings = ["model": CLI.root.appendingPathComponent("Models/emotion-cnn.json").path]
        try JSONSerialization.data(withJSONObject: settings, options: .prettyPrinted).write(to: config)
        let original = try Data(contentsOf: audio), originalConfig = try Data(contentsOf: config)
        let sn = CLI.root.appendingPathComponent("Models/emotion-cnn-sn.json").path
        for arguments in [["analyze", audio.path, "--plot", link.path],  // through a link
                          ["analyze", audio.path, "--plot", dir.path + "/./take.flac"],  // spelled otherwise
                          ["analyze", audio.path, "--config", config.path, "--plot", config.path],
                          ["calibrate", "--model", sn, "--replay", audio.path, "--profile", audio.path],
                          ["listen", "--headless", "--fast", "--replay", audio.path, "--log", audio.path]] {
            let run = try CLI.run(arguments)
            XCTAssertNotEqual(run.status, 0, "\(arguments)")
            XCTAssertTrue(run.stderr.contains("which this run reads"), run.stderr)
        }
        XCTAssertEqual(try Data(contentsOf: audio), original, "the recording is intact")
        XCTAssertEqual(try Data(contentsOf: config), originalConfig, "the config is intact")
    }

    func testAJSONFileThatIsNotALogIsNotAppendedTo() throws {
        let dir = try temporaryDirectory(self)
        let config = dir.appendingPathComponent("other.json")
        let text = "{\n  \"model\": \"x\"\n}\n"  // pretty-printed: its first line is "{" alone
        try text.write(to: config, atomically: true, encoding: .utf8)
        let run = try CLI.run(["listen", "--headless", "--fast", "--replay", angry, "--log", config.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("another log format"), run.stderr)
        XCTAssertEqual(try String(contentsOf: config, encoding: .utf8), text)
    }

    func testALogWhoseLastLineWasCutShortGetsNewEventsOnLinesOfTheirOwn() throws {
        let log = try temporaryDirectory(self).appendingPathComponent("events.jsonl")
        var run = try CLI.run(["listen", "--headless", "--fast", "--replay", angry, "--log", log.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        let handle = try FileHandle(forWritingTo: log)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"time\": \"cut".utf8))  // a crash mid-line
        try handle.close()
        run = try CLI.run(["listen", "--headless", "--fast", "--replay", angry, "--log", log.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.filter { $0 == "{\"time\": \"cut" }.count, 1, "the cut line stays as it was, alone")
        for line in lines where line != "{\"time\": \"cut" { _ = json(line) }
        XCTAssertGreaterThan(lines.count, 3)
    }

    // MARK: damaged audio

    func testWithStdoutClosedTheLogGetsEachEventOnce() throws {
        let log = try temporaryDirectory(self).appendingPathComponent("events.jsonl")
        let run = try shell("\"$EM\" listen --fast --replay '\(angry)' --log '\(log.path)' >&-")
        XCTAssertEqual(run.status, 0, run.stderr)
        let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        XCTAssertFalse(lines.isEmpty)
        XCTAssertEqual(Set(lines).count, lines.count, "no event twice (the log must not become stdout)")
    }

    func testADamagedFLACIsAnErrorNotAShorterClip() throws {
        let dir = try temporaryDirectory(self)
        let cut = dir.appendingPathComponent("cut.flac")
        let flac = try Data(contentsOf: URL(fileURLWithPath: angry))
        try flac.prefix(flac.count * 2 / 3).write(to: cut)
        var run = try CLI.run(["analyze", cut.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stdout.contains("cut.flac: cannot decode audio"), run.stdout)  // in the report, beside other files
        // bench: a file it cannot decode ends the benchmark rather than vanishing from its figures.
        let folder = dir.appendingPathComponent("bench")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        try FileManager.default.copyItem(atPath: angry, toPath: folder.appendingPathComponent("a.flac").path)
        try Data("not audio".utf8).write(to: folder.appendingPathComponent("b.wav"))
        run = try CLI.run(["bench", folder.path, "--long-hours", "0", "--vad", "energy"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("b.wav: cannot decode audio"), run.stderr)
    }
}

/// The "should fix" cases: messages that named the wrong cause, and waits that never ended.
final class MessageTests: XCTestCase {
    let angry = CLI.clip("03-01-05-02-01-01-01")

    func testDevicesAndPipesAreNotCalledEmptyFiles() throws {
        let run = try CLI.run(["analyze", "/dev/zero", "--format", "jsonl"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stdout.contains("not a regular file"), run.stdout)
    }

    func testANumberOfTheWrongKindIsNamedInTheConfigError() throws {
        let dir = try temporaryDirectory(self)
        let config: [String: Any] = ["model": CLI.root.appendingPathComponent("Models/emotion-cnn.json").path, "windows": ["batchWindows": 16.5]]
        let url = dir.appendingPathComponent("config.json")
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        let run = try CLI.run(["analyze", angry, "--config", url.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertFalse(run.stderr.contains("not valid JSON"), run.stderr)
        XCTAssertTrue(run.stderr.contains("does not fit its field"), run.stderr)
    }

    func testALogFIFOWithoutAReaderIsAnErrorNotAHang() throws {
        let fifo = try temporaryDirectory(self).appendingPathComponent("events.fifo")
        XCTAssertEqual(mkfifo(fifo.path, 0o600), 0)
        let run = try CLI.run(["listen", "--headless", "--fast", "--replay", angry, "--log", fifo.path], timeout: 30)
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("no process is reading"), run.stderr)
    }

    func testAppendingAnotherLogFormatIsRefused() throws {
        let log = try temporaryDirectory(self).appendingPathComponent("events.log")
        var run = try CLI.run(["listen", "--headless", "--fast", "--replay", angry, "--log", log.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        run = try CLI.run(["listen", "--headless", "--fast", "--replay", angry, "--log", log.path, "--log-format", "csv"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("another log format"), run.stderr)
        for line in try String(contentsOf: log, encoding: .utf8).split(separator: "\n") { _ = json(String(line)) }
    }

}

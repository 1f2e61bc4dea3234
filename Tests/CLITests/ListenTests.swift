import Foundation
import XCTest

final class ListenTests: XCTestCase {
    let angry = CLI.clip("03-01-05-02-01-01-01")

    func testFastReplayGivesTheSameWindowLabelsAsAnalyzeSegments() throws {
        let live = try CLI.run(["listen", "--replay", angry, "--fast", "--headless"])
        XCTAssertEqual(live.status, 0, live.stderr)
        let events = live.lines.map { json($0) }
        let segments = json(try CLI.run(["analyze", "--format", "jsonl", "--segments", angry]).stdout)["segments"] as! [[String: Any]]
        XCTAssertEqual(events.map { $0["offset"] as! Double }, segments.map { $0["end"] as! Double })
        XCTAssertEqual(events.map { $0["window_label"] as? String ?? "silence" }, segments.map { $0["label"] as! String })
        for e in events {
            XCTAssertEqual(Set(e.keys), ["time", "offset", "label", "confidence", "voice", "probabilities", "window_label", "norm",
                                         "level_dbfs", "dropped", "overruns", "sex"])
            let sex = e["sex"] as? [String: Any]
            XCTAssertEqual(sex == nil, e["window_label"] is NSNull, "a sex for every classified window: \(e)")
            if let sex { XCTAssertTrue(["male", "female"].contains(sex["label"] as? String ?? "")) }
            XCTAssertNotNil(ISO8601DateFormatter.withFractions.date(from: e["time"] as! String), "\(e["time"]!)")
            XCTAssertEqual(e["dropped"] as? Int, 0, "fast replay waits for the analyzer instead of dropping")
        }
    }

    /// `listen` and `calibrate` share their source options: a device or recordings, not both.
    func testADeviceAndRecordingsTogetherAreRefusedByBothListeningCommands() throws {
        for command in [["listen"], ["calibrate", "--profile", "/nonexistent/p.json"]] {
            let run = try CLI.run(command + ["--device", "testcap", "--replay", angry])
            XCTAssertNotEqual(run.status, 0)
            XCTAssertTrue(run.stderr.contains("use either --device or --replay"), run.stderr)
        }
    }

    func testHeadlessWithALogWritesOnlyToTheLogInCSV() throws {
        let log = try temporaryDirectory(self).appendingPathComponent("events.csv")
        let run = try CLI.run(["listen", "--replay", angry, "--fast", "--headless", "--log", log.path, "--log-format", "csv"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout, "")
        let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        XCTAssertTrue(lines[0].hasPrefix("time,offset,label,confidence,voice,neutral,"))
        let events = CLI.windowEnds(seconds: 4.104).count
        XCTAssertEqual(lines.count, 1 + events)
        XCTAssertEqual(Set(lines.map { $0.split(separator: ",", omittingEmptySubsequences: false).count }).count, 1)
        // A second run appends; the header is not repeated.
        XCTAssertEqual(try CLI.run(["listen", "--replay", angry, "--fast", "--headless", "--log", log.path, "--log-format", "csv"]).status, 0)
        let again = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(again.count, 1 + 2 * events)
        XCTAssertEqual(again.filter { $0.hasPrefix("time,") }.count, 1)
    }

    /// Starts a real-time headless replay of 16 s of speech logging to `log`.
    private func startKiosk(in dir: URL, log: URL) throws -> Process {
        let long = dir.appendingPathComponent("long.wav")
        try CLI.sox([angry, angry, angry, angry, long.path])
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = ["listen", "--replay", long.path, "--headless", "--log", log.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    private func lineCount(_ url: URL) -> Int {
        (try? String(contentsOf: url, encoding: .utf8))?.split(separator: "\n").count ?? 0
    }

    /// Waits (30 s at most: a safety net, not a timing assertion) until `url` has `lines` lines.
    private func waitFor(_ lines: Int, in url: URL) {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline && lineCount(url) < lines { usleep(50_000) }
    }

    func testSIGTERMDrainsAndLeavesACompleteLog() throws {
        let dir = try temporaryDirectory(self)
        let log = dir.appendingPathComponent("events.jsonl")
        let process = try startKiosk(in: dir, log: log)
        waitFor(2, in: log)  // real-time replay: the first event comes after 3 s of audio
        process.terminate()  // SIGTERM
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .exit)
        XCTAssertEqual(process.terminationStatus, 0)
        let text = try String(contentsOf: log, encoding: .utf8)
        XCTAssertTrue(text.hasSuffix("\n"))
        let lines = text.split(separator: "\n")
        XCTAssertGreaterThanOrEqual(lines.count, 2)
        for line in lines { XCTAssertNotNil(json(String(line))["label"]) }
    }

    /// Fast replay keeps the ring full; SIGINT must still get through between ticks.
    func testSIGINTStopsAFastReplayEarly() throws {
        let dir = try temporaryDirectory(self)
        let log = dir.appendingPathComponent("events.jsonl")
        let clips = CLI.longReplay
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = ["listen", "--fast", "--headless", "--log", log.path, "--replay"] + clips
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        waitFor(1, in: log)
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        // About 220 s of audio would give ~440 events; stopping early leaves far fewer, all complete.
        let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        XCTAssertLessThan(lines.count, 300)
        for line in lines { XCTAssertNotNil(json(String(line))["label"]) }
    }

    /// A signal while `listen` starts, after main() but before its handlers run (it then catches
    /// SIGHUP, SIGINT and SIGTERM only to record them): SIGHUP is not fatal, SIGTERM still drains.
    func testSignalsWhileStartingAreActedOnNotFatal() throws {
        /// From /proc: SIGHUP caught (by the start-up recorder or, later, the live handlers), and
        /// SIGPIPE ignored (the first thing the live session does: past the window).
        func caught(_ pid: Int32) -> (caught: Bool, ignored: Bool) {
            // Until env has exec'd the program, /proc describes env.
            let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
            guard exe == CLI.binary.resolvingSymlinksInPath().path else { return (false, false) }
            let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
            func mask(_ key: String) -> UInt64 {
                status.split(separator: "\n").first { $0.hasPrefix(key) }.flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) } ?? 0
            }
            return (mask("SigCgt:") & (1 << UInt64(SIGHUP - 1)) != 0, mask("SigIgn:") & (1 << UInt64(SIGPIPE - 1)) != 0)
        }
        let full = try CLI.run(["listen", "--fast", "--headless", "--replay", angry, angry])
        for number in [SIGHUP, SIGTERM] {
            let out = try temporaryDirectory(self).appendingPathComponent("stdout")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil)
            let process = Process()
            // SIGPIPE at its default, whatever this test process inherited or set (a server test ignores it).
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["--default-signal=PIPE", CLI.binary.path, "listen", "--fast", "--headless", "--replay", angry, angry]
            process.currentDirectoryURL = CLI.root
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = FileHandle.nullDevice
            try process.run()
            var state = caught(process.processIdentifier)
            let deadline = Date().addingTimeInterval(20)
            while !(state.caught || state.ignored) && process.isRunning && Date() < deadline {
                usleep(500)
                state = caught(process.processIdentifier)
            }
            XCTAssertTrue(state.caught && !state.ignored, "start-up records signals before the live handlers are installed")
            kill(process.processIdentifier, number)
            process.waitUntilExit()
            XCTAssertEqual(process.terminationReason, .exit, "signal \(number) while starting")
            XCTAssertEqual(process.terminationStatus, 0)
            let lines = try String(contentsOf: out, encoding: .utf8).split(separator: "\n")
            for line in lines { XCTAssertNotNil(json(String(line))["label"]) }
            if number == SIGHUP { XCTAssertEqual(lines.count, full.lines.count, "headless, SIGHUP only reopens the log") }
        }
    }

    func testSIGHUPReopensTheLogAfterRotation() throws {
        let dir = try temporaryDirectory(self)
        let log = dir.appendingPathComponent("events.jsonl"), rotated = dir.appendingPathComponent("events.jsonl.1")
        let process = try startKiosk(in: dir, log: log)
        waitFor(1, in: log)
        try FileManager.default.moveItem(at: log, to: rotated)
        kill(process.processIdentifier, SIGHUP)
        waitFor(1, in: log)
        process.terminate()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertGreaterThanOrEqual(lineCount(rotated), 1)
        XCTAssertGreaterThanOrEqual(lineCount(log), 1, "new events go to a new file at the old path")
    }

    func testUnknownDeviceIsAOneLineErrorNamingIt() throws {
        let run = try CLI.run(["listen", "--device", "nosuchdevice", "--headless"])
        XCTAssertNotEqual(run.status, 0)
        let lines = run.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, run.stderr)
        XCTAssertTrue(run.stderr.contains("nosuchdevice"), run.stderr)
        XCTAssertTrue(run.stderr.contains("emotion-monitor devices"), run.stderr)
    }

    /// The real ALSA capture path, against a PCM that plays a raw file. `listen` asks for 48 kHz mono
    /// float: the file is that.
    func testListenCapturesFromAnALSADeviceByName() throws {
        let dir = try temporaryDirectory(self)
        let raw = dir.appendingPathComponent("speech.raw")
        try CLI.sox([angry, "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", "48000", raw.path])
        let run = try CLI.run(["listen", "--device", "testcap", "--duration", "4", "--headless"],
                              environment: try CLI.filePCM(playing: raw, in: dir))
        XCTAssertEqual(run.status, 0, run.stderr)
        let events = run.lines.map { json($0) }
        XCTAssertEqual(events.map { $0["offset"] as! Double }, CLI.windowEnds(seconds: 4))
        XCTAssertEqual(events.first?["voice"] as? Bool, true)
    }

    func testNaNAndInfinityFromAFloatDeviceAreCleanedLikeDecodedFiles() throws {
        let dir = try temporaryDirectory(self)
        let raw = dir.appendingPathComponent("speech.raw")
        try CLI.sox([angry, "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-r", "48000", raw.path])
        // A NaN and an infinity every 0.1 s: uncleaned, every 10 ms frame holding one reads as -120 dB and the
        // window's features turn NaN.
        var samples = try readRawFloats(raw)
        for i in stride(from: 0, to: samples.count, by: 4800) { samples[i] = .nan }
        for i in stride(from: 2400, to: samples.count, by: 4800) { samples[i] = .infinity }
        try samples.withUnsafeBytes { Data($0) }.write(to: raw)
        let run = try CLI.run(["listen", "--device", "testcap", "--duration", "4", "--headless"],
                              environment: try CLI.filePCM(playing: raw, in: dir))
        XCTAssertEqual(run.status, 0, run.stderr)
        let events = run.lines.map { json($0) }
        XCTAssertFalse(events.isEmpty)
        for event in events {
            XCTAssertEqual(event["voice"] as? Bool, true, "\(event)")
            XCTAssertEqual(event["label"] as? String, "angry", "\(event)")
        }
    }

    func testStatusLineFitsAFixedWidthTerminalAndRestoresTheCursor() throws {
        let output = try runInPseudoTerminal(["listen", "--replay", angry, "--fast"], columns: 60)
        XCTAssertTrue(output.contains("\u{1B}[?25l"), "cursor hidden while live")
        XCTAssertTrue(output.hasSuffix("\u{1B}[?25h"), "cursor restored on exit")
        let frames = output.components(separatedBy: "\r").map(stripANSI).filter { !$0.isEmpty }
        XCTAssertFalse(frames.isEmpty)
        for frame in frames { XCTAssertLessThanOrEqual(frame.count, 59, frame) }
        XCTAssertTrue(frames.contains { $0.contains("dB") && $0.contains("%") }, "\(frames)")
        XCTAssertTrue(frames.filter { $0.contains("%") }.allSatisfy { $0.contains("norm none") }, "bars give way to the normalisation (the default model uses none): \(frames)")
        XCTAssertTrue(output.contains("\u{1B}[1m"), "colour on a terminal")

        let plain = try runInPseudoTerminal(["listen", "--replay", angry, "--fast"], columns: 60, environment: ["NO_COLOR": "1"])
        XCTAssertFalse(plain.contains("\u{1B}[1m"), "NO_COLOR turns colour off")
    }

    func testDurationStopsByItself() throws {
        let run = try CLI.run(["listen", "--replay", angry, "--headless", "--duration", "1"])
        XCTAssertEqual(run.status, 0, run.stderr)
        // Less than one window of audio: one (padded) window, like analyze.
        XCTAssertEqual(run.lines.count, 1)
    }

    func testDevicesListsSomethingOrSaysSo() throws {
        let run = try CLI.run(["devices"])
        // This machine has no sound card: ALSA lists only its "null" device.
        XCTAssertTrue(run.status == 0 ? !run.stdout.isEmpty : run.stderr.contains("no ALSA capture devices"),
                      run.stdout + run.stderr)
    }

    /// Runs the program with stdout and stderr on a pseudo-terminal of the given width.
    private func runInPseudoTerminal(_ arguments: [String], columns: UInt16, environment: [String: String] = [:]) throws -> String {
        var master: Int32 = 0, slave: Int32 = 0
        var size = winsize(ws_row: 24, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        XCTAssertEqual(openpty(&master, &slave, nil, nil, &size), 0)
        let process = Process()
        process.executableURL = CLI.binary
        process.arguments = arguments
        process.currentDirectoryURL = CLI.root
        // The test runner may itself run with NO_COLOR; the colour check needs it unset unless given.
        var inherited = ProcessInfo.processInfo.environment
        inherited["NO_COLOR"] = nil
        process.environment = inherited.merging(environment) { $1 }
        let terminal = FileHandle(fileDescriptor: slave, closeOnDealloc: false)
        process.standardOutput = terminal
        process.standardError = terminal
        try process.run()
        // Written by the reader only, read after group.wait().
        nonisolated(unsafe) var output = Data()
        let reader = DispatchQueue(label: "pty")
        let group = DispatchGroup()
        let terminalSide = master
        reader.async(group: group) {
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = read(terminalSide, &buffer, buffer.count)
                if n <= 0 { break }
                output.append(contentsOf: buffer[0..<n])
            }
        }
        process.waitUntilExit()
        close(slave)
        XCTAssertEqual(group.wait(timeout: .now() + 10), .success)
        close(master)
        XCTAssertEqual(process.terminationStatus, 0)
        return String(decoding: output, as: UTF8.self)
    }
}

func stripANSI(_ s: String) -> String {
    s.replacingOccurrences(of: "\u{1B}\\[[0-9;?]*[A-Za-z]", with: "", options: .regularExpression)
}

extension ISO8601DateFormatter {
    // Configured once, then only read.
    nonisolated(unsafe) static let withFractions: ISO8601DateFormatter = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f
    }()
}

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

final class AnalyzeTests: XCTestCase {
    let angry = CLI.clip("03-01-05-02-01-01-01")
    let emotions = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]

    func testVersionNamesTheProgramAndTheDefaultModel() throws {
        let run = try CLI.run(["--version"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.lines.count, 1, run.stdout)
        XCTAssertTrue(run.stdout.hasPrefix("emotion-monitor "), run.stdout)
        XCTAssertTrue(run.stdout.contains("model \(CLI.defaultCard["name"] as! String), trained \(CLI.defaultCard["date"] as! String)"), run.stdout)
    }

    func testEveryKernelFamilyTheCPUHasGivesTheSameProbabilities() throws {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let cores = ["Prescott", "Haswell"] + (flags.contains(" avx512f") ? ["SkylakeX"] : [])
        var first: [[String: Double]]?
        for core in cores {
            let run = try CLI.run(["analyze", "--format", "jsonl", angry, CLI.clip("03-01-03-02-01-01-02")],
                                  environment: ["OPENBLAS_CORETYPE": core, "EMOTION_MONITOR_LOG_LEVEL": "debug"])
            XCTAssertEqual(run.status, 0, run.stderr)
            XCTAssertTrue(run.stderr.contains("BLAS kernels: OpenBLAS \(core), from OPENBLAS_CORETYPE=\(core)"), run.stderr)
            let probabilities = run.lines.map { json($0)["probabilities"] as! [String: Double] }
            if let first {
                for (a, b) in zip(first, probabilities) {
                    for e in emotions { XCTAssertEqual(a[e]!, b[e]!, accuracy: 2e-4, "\(core) \(e)") }
                }
            } else {
                first = probabilities
            }
        }
        let quiet = try CLI.run(["analyze", angry])
        XCTAssertFalse(quiet.stderr.contains("BLAS kernels"), "debug only: \(quiet.stderr)")
    }

    func testJSONLinesHaveExactlyTheDocumentedFields() throws {
        let run = try CLI.run(["analyze", "--format", "jsonl", angry, CLI.clip("03-01-03-02-01-01-02")])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.lines.count, 2)
        for line in run.lines {
            let object = json(line)
            XCTAssertEqual(Set(object.keys), ["file", "duration", "label", "confidence", "probabilities", "sex"])
            // Field order is part of the format.
            let order = ["\"file\"", "\"duration\"", "\"label\"", "\"confidence\"", "\"probabilities\"", "\"sex\""]
                .map { line.range(of: $0)!.lowerBound }
            XCTAssertEqual(order, order.sorted())
            let probabilities = object["probabilities"] as! [String: Double]
            XCTAssertEqual(Set(probabilities.keys), Set(emotions))
            XCTAssertEqual(probabilities.values.reduce(0, +), 1, accuracy: 1e-3)
            let label = object["label"] as! String
            XCTAssertEqual(probabilities[label], object["confidence"] as? Double)
            XCTAssertEqual(probabilities.values.max(), object["confidence"] as? Double)
            let sex = object["sex"] as! [String: Any]
            XCTAssertTrue(["male", "female"].contains(sex["label"] as! String))
        }
        XCTAssertEqual(json(run.lines[0])["duration"] as! Double, 4.104, accuracy: 0.001)
    }

    func testSegmentsCoverTheFileOnTheHopGrid() throws {
        let run = try CLI.run(["analyze", "--format", "jsonl", "--segments", angry])
        XCTAssertEqual(run.status, 0, run.stderr)
        let segments = json(run.stdout)["segments"] as! [[String: Any]]
        // 4.1 s of audio, 3 s windows every hop (1 s: windows ending at 3 and 4 s).
        XCTAssertEqual(segments.map { $0["end"] as! Double }, CLI.windowEnds(seconds: 4.104))
        for s in segments {
            XCTAssertEqual(Set(s.keys), ["start", "end", "label", "confidence", "voice"])
            XCTAssertEqual((s["end"] as! Double) - (s["start"] as! Double), 3, accuracy: 1e-9)
            XCTAssertEqual(s["voice"] as? Bool, true)
            XCTAssertTrue(emotions.contains(s["label"] as! String))
        }
    }

    func testCSVAndTextFormats() throws {
        let csv = try CLI.run(["analyze", "--format", "csv", angry])
        XCTAssertEqual(csv.status, 0, csv.stderr)
        XCTAssertEqual(csv.lines.count, 2)
        XCTAssertTrue(csv.lines[0].hasPrefix("file,duration,label,confidence,neutral,calm,"))
        XCTAssertEqual(csv.lines[1].split(separator: ",", omittingEmptySubsequences: false).count,
                       csv.lines[0].split(separator: ",").count)
        let text = try CLI.run(["analyze", angry])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("4.1 s"), text.stdout)
    }

    func testPlotWritesAnSVGWithAllThreePanels() throws {
        let out = try temporaryDirectory(self).appendingPathComponent("plot.svg")
        let run = try CLI.run(["analyze", angry, "--plot", out.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        let svg = try String(contentsOf: out, encoding: .utf8)
        XCTAssertTrue(svg.hasPrefix("<svg"))
        for panel in ["waveform", "log-mel", "emotion", "<polygon", "<polyline"] { XCTAssertTrue(svg.contains(panel), panel) }
        XCTAssertTrue(XMLParser(data: Data(svg.utf8)).parse(), "the SVG is well-formed XML")
    }

    func testEveryBadInputGetsAOneLineErrorAndTheRunGoesOn() throws {
        let dir = try temporaryDirectory(self)
        let empty = dir.appendingPathComponent("empty.wav"), text = dir.appendingPathComponent("notes.wav")
        let truncated = dir.appendingPathComponent("truncated.flac"), silent = dir.appendingPathComponent("silence.wav")
        FileManager.default.createFile(atPath: empty.path, contents: Data())
        try Data("these are my notes, not audio\n".utf8).write(to: text)
        let flac = try Data(contentsOf: URL(fileURLWithPath: angry))
        try flac.prefix(100).write(to: truncated)
        // sox dithers: "silence" at -90 dBFS, as a muted input really is.
        try CLI.sox(["-n", "-r", "16000", "-c", "1", "-b", "16", silent.path, "trim", "0", "2"])
        let bad = ["/nonexistent/x.wav", dir.path, empty.path, text.path, truncated.path, silent.path]
        let run = try CLI.run(["analyze", "--format", "jsonl"] + bad + [angry])
        XCTAssertEqual(run.status, 1)
        XCTAssertEqual(run.lines.count, bad.count + 1, run.stdout)
        for (line, path) in zip(run.lines, bad) {
            let object = json(line)
            XCTAssertEqual(object["file"] as? String, path)
            XCTAssertFalse((object["error"] as? String ?? "\n").contains("\n"), line)
        }
        XCTAssertEqual(json(run.lines[bad.count])["label"] as? String != nil, true, "the good file after the bad ones is still analysed")
        XCTAssertTrue(run.lines[5].contains("no speech"), run.lines[5])
        XCTAssertTrue(run.lines[1].contains("is a directory"), run.lines[1])
    }

    func testTruncatedButDecodableAudioStillGivesAResult() throws {
        let dir = try temporaryDirectory(self)
        let wav = dir.appendingPathComponent("full.wav"), cut = dir.appendingPathComponent("cut.wav")
        try CLI.sox([angry, wav.path])
        let data = try Data(contentsOf: wav)
        try data.prefix(data.count * 2 / 3).write(to: cut)   // header promises more than is there
        let run = try CLI.run(["analyze", "--format", "jsonl", cut.path])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertEqual(json(run.stdout)["duration"] as! Double, 4.104 * 2 / 3, accuracy: 0.05)
    }

    func testUnusualRatesChannelsShortClipsAndNaNs() throws {
        let dir = try temporaryDirectory(self)
        let low = dir.appendingPathComponent("8k.wav"), high = dir.appendingPathComponent("192k.wav")
        let six = dir.appendingPathComponent("6ch.wav"), short = dir.appendingPathComponent("short.wav")
        try CLI.sox([angry, "-r", "8000", low.path])
        try CLI.sox([angry, "-r", "192000", high.path])
        try CLI.sox([angry, six.path, "remix", "1", "1", "1", "1", "1", "1"])
        try CLI.sox([angry, short.path, "trim", "1.0", "0.5"])
        let nan = dir.appendingPathComponent("nan.wav")
        // Speech with three non-finite samples.
        let raw = dir.appendingPathComponent("speech.raw")
        try CLI.sox([angry, "-t", "raw", "-e", "floating-point", "-b", "32", raw.path])
        var samples = try readRawFloats(raw)
        samples[100] = Float.nan
        samples[2000] = Float.infinity
        samples[3000] = -Float.infinity
        try writeFloatWav(nan, samples: samples, rate: 16_000)
        let run = try CLI.run(["analyze", "--format", "jsonl", low.path, high.path, six.path, short.path, nan.path])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        let results = run.lines.map { json($0) }
        XCTAssertEqual(results.count, 5)
        for r in results { XCTAssertNotNil(r["label"], "\(r)") }
        XCTAssertEqual(results[0]["duration"] as! Double, 4.104, accuracy: 0.01)
        XCTAssertEqual(results[1]["duration"] as! Double, 4.104, accuracy: 0.01)
        XCTAssertEqual(results[3]["duration"] as! Double, 0.5, accuracy: 0.01)
        XCTAssertTrue(run.stderr.contains("3 NaN or infinite samples"), run.stderr)
        // Six identical channels mix to the original: same answer as the mono file.
        let mono = json(try CLI.run(["analyze", "--format", "jsonl", angry]).stdout)
        XCTAssertEqual(results[2]["label"] as? String, mono["label"] as? String)
        XCTAssertEqual(results[2]["confidence"] as! Double, mono["confidence"] as! Double, accuracy: 0.01)
    }

    func testAnHourLongFileStreamsInBoundedMemory() throws {
        let dir = try temporaryDirectory(self)
        let noise = dir.appendingPathComponent("noise.wav"), speech = dir.appendingPathComponent("speech.wav")
        let long = dir.appendingPathComponent("hour.wav")
        try CLI.sox(["-n", "-r", "8000", "-c", "1", "-b", "16", noise.path, "synth", "3596", "whitenoise", "vol", "0.0005"])
        try CLI.sox([angry, "-r", "8000", "-b", "16", speech.path])
        try CLI.sox([noise.path, speech.path, long.path])
        let output = dir.appendingPathComponent("hour.jsonl")
        let hour = try CLI.peakMemory(["analyze", "--format", "jsonl", long.path], stdout: output)
        XCTAssertEqual(hour.status, 0)
        XCTAssertEqual(json(try String(contentsOf: output, encoding: .utf8))["duration"] as! Double, 3600.1, accuracy: 0.1)
        // Held whole at 16 kHz the hour's samples alone would take 230 MB; streamed, only the features
        // stay (~30 MB) beside what the model itself takes for a short clip.
        let short = try CLI.peakMemory(["analyze", "--format", "jsonl", speech.path], stdout: output)
        XCTAssertEqual(short.status, 0)
        XCTAssertLessThan(hour.megabytes - short.megabytes, 60, "peak resident memory beyond a short clip's (\(short.megabytes) MB)")
    }

    func testBadConfigModelAndFlagsAreOneLineErrors() throws {
        let dir = try temporaryDirectory(self)
        let config = dir.appendingPathComponent("config.json")
        try Data("{\"model\": 3".utf8).write(to: config)
        var run = try CLI.run(["analyze", angry, "--config", config.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("invalid config"), run.stderr)

        run = try CLI.run(["analyze", angry, "--hop", "0"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("hopSeconds"), run.stderr)

        let model = dir.appendingPathComponent("model.json")
        try Data("{}".utf8).write(to: model)
        run = try CLI.run(["analyze", angry, "--model", model.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("not a valid model card"), run.stderr)
        XCTAssertEqual(run.stderr.split(separator: "\n").count, 1, run.stderr)

        run = try CLI.run(["analyze", angry, "--format", "yaml"])
        XCTAssertNotEqual(run.status, 0)
    }
}

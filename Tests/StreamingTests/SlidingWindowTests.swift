import Features
import Foundation
import Model
import Streaming
import XCTest

final class SlidingWindowTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
    static let weights = try! ModelWeights(cardURL: root.appendingPathComponent("Models/emotion-cnn.json"))
    /// Speaker-normalised: online, each window uses the speech heard up to its end.
    static let normalised = try! ModelWeights(cardURL: root.appendingPathComponent("Models/emotion-cnn-sn.json"))
    static let clip = root.appendingPathComponent("Tests/Clips/Actor_01/03-01-05-02-01-01-01.flac").path

    func analyzer(_ weights: ModelWeights = weights, windows: WindowSettings = WindowSettings()) -> ClipAnalyzer {
        ClipAnalyzer(classifier: EmotionClassifier(weights: weights), windows: windows, speech: SpeechActivity())
    }

    func live(_ path: String, weights: ModelWeights = weights, windows: WindowSettings = WindowSettings(),
              chunk: (Int) -> Int) throws -> [LiveEvent] {
        let file = try AudioFile(path: path)
        let window = try SlidingWindow(classifier: EmotionClassifier(weights: weights), windows: windows,
                                       speech: SpeechActivity(), smoothing: SmoothingSettings(), inputRate: file.sampleRate)
        var events: [LiveEvent] = [], block: [Float] = [], i = 0
        while true {
            block.removeAll()
            guard try file.read(maxFrames: chunk(i), into: &block) > 0 else { break }
            events += try window.push(block[...])
            i += 1
        }
        return events + (try window.finish())
    }

    /// The same audio through `listen`'s sliding window and `analyze --segments` gives the same windows.
    func testLiveWindowsEqualAnalyzeSegments() throws {
        for weights in [Self.weights, Self.normalised] {
            try checkLiveEqualsSegments(weights)
        }
    }

    /// The encoder model too, though `analyze` reads its windows' samples in a second decoding of the
    /// file and `listen` from the samples it holds.
    func testEncoderLiveWindowsEqualAnalyzeSegments() throws {
        let card = Self.root.appendingPathComponent("Models/emotion-whisper.json")
        let encoder = try ModelCard.load(from: card).encoder!.file
        guard FileManager.default.fileExists(atPath: encoder) else {
            throw XCTSkip("needs the Whisper base encoder at \(encoder) (./setup.sh installs it)")
        }
        try checkLiveEqualsSegments(try ModelWeights(cardURL: card))
    }

    /// The pool delivers in input order, each result what one analyzer alone gives.
    func testTheAnalyzerPoolDeliversInInputOrder() throws {
        let folder = Self.root.appendingPathComponent("Tests/Clips").path
        let clips = FileManager.default.subpaths(atPath: folder)!.filter { $0.hasSuffix(".flac") }.sorted().map { folder + "/" + $0 }
        XCTAssertGreaterThan(clips.count, 3)
        let files = clips + clips.reversed() + ["/nonexistent.wav"]
        nonisolated(unsafe) var delivered: [(Int, [Float]?)] = []
        forEachAnalyzed(files, weights: Self.weights, windows: WindowSettings(), speech: SpeechActivity(), threads: 2, group: 3,
                        work: { analyzer, paths in analyzer.analyze(paths: paths).map { try? $0.get().emotion } },
                        deliver: { delivered.append(($0, $1)) })
        XCTAssertEqual(delivered.map(\.0), Array(files.indices))
        for (i, emotion) in delivered {
            XCTAssertEqual(emotion, try? analyzer().analyze(path: files[i]).emotion, files[i])
        }
        XCTAssertNil(delivered.last!.1, "a file that fails is delivered in its place")
    }

    /// With the encoder, a group's short clips share the model's batches, and each still gets what it
    /// gets alone: its label, its segments; a file too long to hold, one without speech and a missing
    /// one take their own places.
    func testClipsSharingTheEncodersBatchesGetWhatEachGetsAlone() throws {
        let card = Self.root.appendingPathComponent("Models/emotion-whisper.json")
        guard FileManager.default.fileExists(atPath: try ModelCard.load(from: card).encoder!.file) else {
            throw XCTSkip("needs the Whisper base encoder (./setup.sh installs it)")
        }
        let folder = Self.root.appendingPathComponent("Tests/Clips").path
        let clips = FileManager.default.subpaths(atPath: folder)!.filter { $0.hasSuffix(".flac") }.sorted().map { folder + "/" + $0 }
        let long = try sox("long.wav", [Self.clip], effects: ["pad", "0", "9"])  // past batchedFileSeconds: analysed alone
        let silence = try sox("silence.wav", ["-n", "-r", "16000", "-c", "1"], effects: ["trim", "0", "2"])
        let files = [clips[0], long, clips[1], silence, "/nonexistent.wav"] + clips.dropFirst(2)
        let analyzer = analyzer(try ModelWeights(cardURL: card))
        let grouped = analyzer.analyze(paths: files, segments: true)
        XCTAssertEqual(grouped.count, files.count)
        for (file, result) in zip(files, grouped) {
            switch (result, Result { try analyzer.analyze(path: file, segments: true) }) {
            case (.success(let together), .success(let alone)):
                XCTAssertEqual(together.path, file)
                for (x, y) in zip(together.emotion + together.sex, alone.emotion + alone.sex) { XCTAssertEqual(x, y, accuracy: 1e-4, file) }
                XCTAssertEqual(together.segments?.map(\.voice), alone.segments?.map(\.voice), file)
                for (a, b) in zip(together.segments ?? [], alone.segments ?? []) {
                    for (x, y) in zip(a.prediction?.emotion ?? [], b.prediction?.emotion ?? []) { XCTAssertEqual(x, y, accuracy: 1e-4, file) }
                }
            case (.failure(let together), .failure(let alone)):
                XCTAssertEqual("\(together)", "\(alone)")
            case (let together, let alone):
                XCTFail("\(file): \(together) in a group, \(alone) alone")
            }
        }
        XCTAssertEqual(grouped.map { (try? $0.get()) == nil }, [false, false, false, true, true] + clips.dropFirst(2).map { _ in false })
    }

    /// A hop longer than the window skips audio between windows; the online speaker mean must still hear it.
    func testOnlineMeanHearsTheGapsWhenTheHopExceedsTheWindow() throws {
        let long = try sox("long.wav", [Self.clip, Self.clip, Self.clip])
        var windows = WindowSettings()
        windows.hopSeconds = 4
        try checkLiveEqualsSegments(Self.normalised, path: long, windows: windows)
    }

    /// Calibration's collector stops at the speech asked for however the audio arrives, and its mean
    /// is the one a recording of exactly that audio gives.
    func testTheSpeakerMeanCollectorStopsAtItsSecondsInAnyBlocks() throws {
        let file = try AudioFile(path: Self.clip)
        var samples: [Float] = []
        while try file.read(maxFrames: 16_000, into: &samples) > 0 {}
        let card = Self.normalised.card
        var means: [SpeakerMean] = []
        for block in [samples.count, 777] {
            let collector = try SpeakerMeanCollector(card: card, inputRate: file.sampleRate, speech: SpeechActivity(), seconds: 1)
            var last: SpeakerMeanCollector.Progress?
            for start in stride(from: 0, to: samples.count, by: block) {
                last = try collector.push(samples[start..<min(samples.count, start + block)]).last
            }
            XCTAssertEqual(last?.complete, true)
            XCTAssertEqual(collector.speechSeconds, 1, accuracy: 0.03, "20 ms steps stop the count near 1 s in blocks of \(block)")
            let whole = analyzer(Self.normalised).speakerMean(of: collector.stream)
            XCTAssertEqual(whole, collector.mean)
            means.append(collector.mean)
        }
        XCTAssertEqual(means[0], means[1])
    }

    private func checkLiveEqualsSegments(_ weights: ModelWeights, path: String = clip, windows: WindowSettings = WindowSettings()) throws {
        let segments = try analyzer(weights, windows: windows).analyze(path: path, segments: true).segments!
        let events = try live(path, weights: weights, windows: windows) { [160, 1, 4_321, 999, 8_000][$0 % 5] }
        XCTAssertGreaterThan(segments.count, 1)
        XCTAssertEqual(events.map(\.end), segments.map(\.end))
        XCTAssertEqual(events.map(\.voice), segments.map(\.voice))
        for (e, s) in zip(events, segments) {
            let (a, b) = (e.window!.emotionLogits, s.prediction!.emotionLogits)
            XCTAssertEqual(a.indices.max { a[$0] < a[$1] }, b.indices.max { b[$0] < b[$1] })
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-4) }
        }
    }

    /// Runs sox on `arguments` into `name`, then `effects`, in a fresh folder removed after the test; returns its path.
    private func sox(_ name: String, _ arguments: [String], effects: [String] = []) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sw-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let output = dir.appendingPathComponent(name).path
        let sox = Process()
        sox.executableURL = URL(fileURLWithPath: "/usr/bin/sox")
        sox.arguments = arguments + [output] + effects
        try sox.run()
        sox.waitUntilExit()
        XCTAssertEqual(sox.terminationStatus, 0)
        return output
    }

    func testResampledStreamsAgreeToo() throws {
        let wav = try sox("48k.wav", [Self.clip, "-r", "48000", "-b", "24"])
        let segments = try analyzer().analyze(path: wav, segments: true).segments!
        let events = try live(wav) { [960, 7, 48_000][$0 % 3] }
        XCTAssertEqual(events.count, segments.count)
        for (e, s) in zip(events, segments) {
            for (x, y) in zip(e.window!.emotionLogits, s.prediction!.emotionLogits) { XCTAssertEqual(x, y, accuracy: 1e-3) }
        }
    }

    /// The speech detector decides whether a file has speech; its label's windows lie over the loud
    /// frames, where training laid them, not over the frames the detector heard.
    func testTheLabelWindowsLieOverTheLoudFramesWhereTrainingLaidThem() throws {
        let silero = QuietSkippingTests.speech
        let heard = try ClipAnalyzer(classifier: EmotionClassifier(weights: Self.weights), windows: WindowSettings(), speech: silero)
        let (stream, _) = try heard.features(path: Self.clip)
        let n = stream.sampleCount
        XCTAssertNotEqual(silero.region(energies: stream.speechEnergies, sampleCount: n),
                          silero.region(energies: stream.energies, sampleCount: n), "the detector narrows this clip's region")
        XCTAssertEqual(try heard.analyze(path: Self.clip).speechRegion, try analyzer().analyze(path: Self.clip).speechRegion)
    }

    func testSilenceIsReportedNotClassifiedAndShortStreamsGetOneWindow() throws {
        let window = try SlidingWindow(classifier: EmotionClassifier(weights: Self.weights), windows: WindowSettings(),
                                       speech: SpeechActivity(), smoothing: SmoothingSettings(), inputRate: 16_000)
        var events = try window.push([Float](repeating: 0, count: 16_000 * 4)[...])
        XCTAssertEqual(events.map(\.end), [3.0, 4.0], "one event a hop (1 s by default)")
        XCTAssertTrue(events.allSatisfy { !$0.voice && $0.window == nil && $0.label == nil })
        XCTAssertEqual(events[0].levelDbfs, -120)

        let short = try SlidingWindow(classifier: EmotionClassifier(weights: Self.weights), windows: WindowSettings(),
                                      speech: SpeechActivity(), smoothing: SmoothingSettings(), inputRate: 16_000)
        events = try short.push([Float](repeating: 0.1, count: 8_000)[...])
        XCTAssertTrue(events.isEmpty)
        events = try short.finish()
        XCTAssertEqual(events.map(\.end), [3.0])
    }

    func testSmootherAveragesAndHoldsTheLabelWithinTheHysteresis() {
        var settings = SmoothingSettings()
        settings.windows = 2
        settings.hysteresis = 0.1
        var s = Smoother(settings: settings)
        XCTAssertEqual(s.add([0.6, 0.4]).label, 0)
        // Class 1 now leads the average by only 0.04: the label holds.
        XCTAssertEqual(s.add([0.38, 0.62]).label, 0)
        // Class 1 leads by 0.3: the label switches.
        let (p, label) = s.add([0.27, 0.73])
        XCTAssertEqual(label, 1)
        XCTAssertEqual(p[1], (0.62 + 0.73) / 2, accuracy: 1e-6)
        s.silence()
        XCTAssertEqual(s.add([0.9, 0.1]).label, 0)
    }
}

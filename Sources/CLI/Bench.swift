import ArgumentParser
import CFMAPeak
import Evaluation
import Features
import Foundation
import Model
import Output
import Streaming

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure speed: real-time factor of decode + features + model on one thread, the split, files/s on all cores.")

    @Argument(help: "Folder of audio files (default: ../shared/data/ravdess beside the checkout).")
    var directory: String?

    @Option(help: "Use at most this many files.")
    var limit: Int = 1200

    @Flag(help: "Benchmark the live pipeline instead: replay the files in real time as `listen --replay` does.")
    var live = false

    @Option(help: "With --live: seconds of real-time replay.")
    var seconds: Double = 60

    @Option(help: "Also time one stream this many hours long (the files repeated) through features and the model; 0 skips it.")
    var longHours: Double = 1

    @OptionGroup var common: CommonOptions

    func validate() throws {
        if limit < 1 { throw ValidationError("--limit must be at least 1") }
        if !(seconds > 0 && seconds <= 86_400) { throw ValidationError("--seconds must be a number of seconds in (0, 86400]") }
        if !(longHours >= 0 && longHours <= 24) { throw ValidationError("--long-hours must be 0...24") }
    }

    func run() throws {
        let (config, weights) = try common.loadAnalysis()
        let folder = directory ?? URL(fileURLWithPath: CommandLine.executablePath).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent("../../../../shared/data/ravdess").standardized.path
        let found = audioFiles(in: folder)
        if let skipped = skippedLine(found.unreadable) { throw Failure("\(folder): \(skipped)") }
        let files = Array(found.files.prefix(limit))
        guard !files.isEmpty else { throw Failure("\(folder): no audio files to benchmark (pass a folder)") }
        if live { return try LiveBenchmark(config: config, weights: weights).run(paths: files, seconds: seconds) }

        let analyzer = ClipAnalyzer(classifier: EmotionClassifier(weights: weights), windows: config.windows, speech: config.speech)
        // Each file's seconds of audio, 0 without speech, a group at a time as `analyze` takes them; one
        // that cannot be decoded ends the benchmark, whose figures would otherwise leave it out unseen.
        let group = ClipAnalyzer.groupFiles
        func audioSeconds(_ paths: ArraySlice<String>) throws -> [Double] {
            try analyzer.analyze(paths: Array(paths)).map { result in
                do { return try result.get().duration } catch AnalysisError.noSpeech { return 0 } catch { throw Failure("\(error)") }
            }
        }
        // Warm up (page in the model, plan the FFT) before timing.
        _ = try audioSeconds(files.prefix(1))
        let (warmModel, warmWindows) = (analyzer.modelSeconds, analyzer.modelWindows)
        var audio = 0.0, silent = 0
        let single = try measure {
            for chunk in stride(from: 0, to: files.count, by: group) {
                for s in try audioSeconds(files[chunk..<min(chunk + group, files.count)]) {
                    audio += s
                    if s == 0 { silent += 1 }
                }
            }
        }
        guard audio > 0 else { throw Failure("\(folder): no speech in any of its \(files.count) audio files; nothing to benchmark") }
        let model = analyzer.modelSeconds - warmModel
        let threads = ProcessInfo.processInfo.activeProcessorCount
        let parallel = measure {
            forEachAnalyzed(files, weights: weights, windows: config.windows, speech: config.speech, threads: threads, group: group,
                            work: { a, paths in a.analyze(paths: paths).map { _ in () } }, deliver: { _, _ in })
        }
        print("files           \(files.count) (\(String(format: "%.1f", audio)) s of audio\(silent > 0 ? ", \(silent) without speech" : "")) from \(folder)")
        print("model           \(weights.card.name), \(weights.card.features.melBands) mel bands, hop \(weights.card.features.hopLength) samples")
        print(String(format: "one thread      real-time factor %.5f (%.0fx faster than real time)", single / audio, audio / single))
        print(String(format: "  decode+features %.5f  (%.1f%%)", (single - model) / audio, 100 * (single - model) / single))
        let vad = analyzer.voiceDetectorSeconds
        print(config.speech.detector == nil ? "    speech detector: none (energy gate alone)"
              : String(format: "    of which Silero VAD %.5f  (%.1f%%)", vad / audio, 100 * vad / single))
        print(String(format: "  model           %.5f  (%.1f%%)", model / audio, 100 * model / single))
        let windows = analyzer.modelWindows - warmWindows
        let gmacs = Double(windows * weights.multiplyAddsPerWindow) / model / 1e9
        var isa: UnsafePointer<CChar>?
        let peak = fma_peak_gflops(1, &isa) / 2
        print(String(format: "  model speed     %.1f GMAC/s over %d windows, batches of %d%@: %.0f%% of one core's fp32 FMA peak (%.1f GFMA/s, %@, measured)",
                     gmacs, windows, config.windows.batchWindows,
                     weights.card.encoder == nil ? "" : " (encoder passes of \(EmotionClassifier.encoderWindows))", 100 * gmacs / peak, peak, String(cString: isa!)))
        print("  BLAS kernels    \(BLASKernels.description)")
        print(String(format: "all %d cores     %.1f files/s, real-time factor %.5f", threads, Double(files.count) / parallel, parallel / audio))
        print("peak memory     \(peakResidentMegabytes()) MB resident")
        if longHours > 0 {
            let (seconds, labelled) = try longStream(files: files, analyzer: analyzer)
            print(String(format: "long stream     %.1f h of audio in %.1f s (real-time factor %.5f, label %@), peak %d MB resident",
                         longHours, seconds, seconds / (longHours * 3600), labelled, peakResidentMegabytes()))
        }
        try finishOutput()
    }

    /// Times a `longHours` stream (the first file's audio over and over, in 64 k-frame blocks as a
    /// file is decoded) through the front end and the model: catches costs that grow faster than the
    /// audio (a 4 h file once took 144 s where 2.6 s was due).
    private func longStream(files: [String], analyzer: ClipAnalyzer) throws -> (Double, String) {
        let file = try AudioFile(path: files[0])
        var source: [Float] = []
        while try file.read(maxFrames: 1 << 16, into: &source) > 0 {}
        guard !source.isEmpty else { throw Failure("\(files[0]): no audio to repeat") }
        let total = Int(longHours * 3600 * Double(file.sampleRate))
        var label = "-"
        let elapsed = try measure {
            let stream = try FeatureStream(for: analyzer.classifier.card, inputRate: file.sampleRate, detector: try analyzer.speech.makeDetector())
            var block = [Float](repeating: 0, count: 1 << 16)
            var pushed = 0
            while pushed < total {
                let n = min(block.count, total - pushed)
                for i in 0..<n { block[i] = source[(pushed + i) % source.count] }
                try stream.push(block[..<n])
                pushed += n
            }
            try stream.finish()
            let result = try analyzer.analyze(stream: stream, path: "long stream")
            label = analyzer.classifier.card.labels[result.emotion.indices.max { result.emotion[$0] < result.emotion[$1] }!]
        }
        return (elapsed, label)
    }

    private func measure(_ body: () throws -> Void) rethrows -> Double {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
}

/// VmHWM from /proc/self/status: the most memory this process ever held resident.
func peakResidentMegabytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kb = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
    return kb / 1024
}

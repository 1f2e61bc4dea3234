import ArgumentParser
import Foundation
import Model
import Output
import Streaming

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify the emotion of recorded speech files (WAV, FLAC, OGG, MP3, ...).")

    @Argument(help: "Audio files to analyse.")
    var files: [String]

    @Option(help: "Output format: text, jsonl or csv.")
    var format: ReportFormat = .text

    @Flag(help: "Also report every analysis window (start, end, label, confidence, voice), as `listen` sees them.")
    var segments = false

    @Option(help: "Write an SVG with waveform, log-mel spectrogram and emotion timeline (one input file).")
    var plot: String?

    @OptionGroup var parallel: ParallelOptions

    @OptionGroup var speaker: ProfileOption
    @OptionGroup var common: CommonOptions

    func validate() throws {
        if plot != nil && files.count != 1 { throw ValidationError("--plot takes exactly one input file") }
    }

    func run() throws {
        let (config, weights) = try common.loadAnalysis(reading: files + [speaker.profile].compactMap { $0 }, writing: [("--plot", plot)],
                                                        forProfile: speaker.profile != nil)
        let normalisation = try speaker.normalisation(for: weights.card)
        let report = ClipReport(format: format, card: weights.card)
        if let header = report.header { print(header) }
        let progress = ProgressBar(total: files.count)
        var failures = 0
        var outputError: Error?, plotError: Error?
        forEachAnalyzed(files, weights: weights, windows: config.windows, speech: config.speech, threads: parallel.jobs,
                        group: ClipAnalyzer.groupFiles, work: { analyzer, paths in
            analyzer.analyze(paths: paths, segments: segments || plot != nil, keepFeatures: plot != nil, normalisation: { _ in normalisation })
        }, deliver: { index, result in
            progress.clear()
            defer { progress.advance() }
            switch result {
            case .success(let clip):
                if clip.nonFiniteSamples > 0 {
                    warn("\(clip.path): \(clip.nonFiniteSamples) NaN or infinite samples were replaced by silence")
                }
                print(report.render(clip))
                if let plot {
                    do { try OutputFile.write(Data(SVGPlot(card: weights.card).render(clip).utf8), to: plot) } catch { plotError = error }
                }
            case .failure(let error):
                failures += 1
                print(report.renderError(path: files[index], message: "\(error)"))
            }
            if outputError == nil { do { try StandardOutput.flush() } catch { outputError = error } }
        })
        if let outputError { throw Failure("\(outputError)") }
        if let plotError { throw Failure("cannot write plot: \(plotError)") }
        if failures > 0 { throw ExitCode(1) }
    }
}

extension ReportFormat: ExpressibleByArgument {}

func warn(_ message: String) {
    FileHandle.standardError.write("warning: \(message)\n".data(using: .utf8)!)
}

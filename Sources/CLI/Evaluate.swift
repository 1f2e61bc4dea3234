import ArgumentParser
import Evaluation
import Features
import Foundation
import Model
import Output
import Streaming

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure accuracy on labelled corpora: accuracy, UAR, recall, confusion matrix, speaker sex.",
        discussion: """
        A folder with a clips.csv manifest (columns file, speaker, sex, emotion; the README says how) is read \
        from it, as one corpus named after the folder, so any labelled recordings can be scored. Elsewhere it \
        reads the names of RAVDESS (03-01-EE-II-SS-RR-AA), TESS (OAF_back_angry), SAVEE (DC_a01) and URDU \
        (Angry/SM1_F10_A010) files, recognised from the names or fixed with --corpus. It reports each corpus \
        found: accuracy over the eight emotions (what a user sees) and accuracy and UAR over the corpus's own \
        classes (the best-scoring of those), and speaker sex where it is known. Accuracy means something only on speakers the model never heard: \
        evaluate a model trained without that corpus or those actors (Training/run_all.sh makes them). A clip \
        in which no speech is heard counts as wrong (a user would get no answer for it).
        """)

    enum Format: String, ExpressibleByArgument { case text, json }

    /// Where a speaker-normalised model's speaker mean comes from, for comparing the three.
    enum Calibration: String, ExpressibleByArgument { case none, online, neutral }

    @Argument(help: "Folder searched recursively for clips.csv manifests and labelled audio files.")
    var directory: String

    @Option(help: "Read every file's name as this corpus's: ravdess, tess, savee or urdu, ignoring manifests (default: manifests, else recognised per file).")
    var corpus: Corpus?

    @Option(help: "Output format: text, or json (one object per corpus, one per line).")
    var format: Format = .text

    @Option(help: "Only these RAVDESS actors, e.g. 1-4 or 17,19,21-24 (other corpora are unaffected).")
    var actors: String?

    @Option(help: """
        Speaker normalisation to score: none (population mean), online (running mean of each clip's speech) or \
        neutral (a profile from the speaker's neutral clips). Given, every mode scores the same clips: the \
        non-neutral ones of speakers who have neutral clips.
        """)
    var calibration: Calibration?

    @OptionGroup var parallel: ParallelOptions

    @OptionGroup var common: CommonOptions

    func run() throws {
        let wanted = try actors.map(parseActors)
        let (all, unreadable) = try labelledClips(in: directory, corpus: corpus)
        // Said first, and an error at the end: figures missing part of a corpus must not pass for whole.
        let skipped = skippedLine(unreadable).map { "\(directory): \($0)" }
        if let skipped { FileHandle.standardError.write(Data("error: \(skipped)\n".utf8)) }
        let found = all.filter { clip in clip.actor.map { wanted?.contains($0) ?? true } ?? true }
        let withNeutral = Set(found.filter { $0.emotion == 0 }.map(\.speaker))
        let clips = calibration == nil ? found : found.filter { ($0.emotion ?? 0) != 0 && withNeutral.contains($0.speaker) }
        guard !clips.isEmpty else {
            throw Failure("\(directory): " + (corpus.map { "no \($0.rawValue.uppercased())-named audio files found" }
                ?? "no \(Manifest.fileName) manifest with clips and no RAVDESS, TESS, SAVEE or URDU-named audio files found"))
        }
        let (config, weights) = try common.loadAnalysis(forProfile: calibration != nil)
        guard weights.card.labels == Corpus.emotions else { throw Failure("evaluate needs a model with the eight emotions \(Corpus.emotions.joined(separator: ", "))") }
        if calibration != nil && weights.card.speakerNormalisation == nil {
            throw Failure("--calibration needs a speaker-normalised model; \(weights.card.name) is not")
        }
        let normalisations = try speakerNormalisations(found, config: config, weights: weights)
        // Each corpus's own classes: a named corpus's, and every emotion its clips (from a manifest) have.
        var classes: [String: Set<Int>] = [:]
        for clip in clips {
            classes[clip.corpus, default: Set(Corpus(rawValue: clip.corpus)?.classes ?? [])].formUnion([clip.emotion].compactMap { $0 })
        }
        var reports: [String: CorpusReport] = [:]
        var failures = 0
        let progress = ProgressBar(total: clips.count)
        let sexed = weights.card.sexLabels.count == 2
        forEachAnalyzed(clips.map(\.path), weights: weights, windows: config.windows, speech: config.speech, threads: parallel.jobs,
                        group: ClipAnalyzer.groupFiles, work: { analyzer, paths in
            analyzer.analyze(paths: paths, normalisation: normalisations)
        }, deliver: { index, result in
            progress.advance()
            let answer: (emotion: [Float], sex: [Float])?
            switch result {
            case .success(let r): answer = (r.emotion, r.sex)
            case .failure(let error as AnalysisError):  // no speech heard: the user would get no answer
                answer = nil
                FileHandle.standardError.write("note: \(error); counted as wrong\n".data(using: .utf8)!)
            case .failure(let error):
                failures += 1
                FileHandle.standardError.write("error: \(error)\n".data(using: .utf8)!)
                return
            }
            let clip = clips[index]
            reports[clip.corpus, default: CorpusReport(corpus: clip.corpus, classes: classes[clip.corpus]!.sorted())]
                .add(clip, emotion: answer?.emotion, sex: answer?.sex, sexed: sexed)
        })
        let mode = calibration.map { " with calibration \($0.rawValue)" } ?? ""
        // The four named corpora in their order, then the others by name.
        func rank(_ name: String) -> (Int, String) { (Corpus.allCases.firstIndex { $0.rawValue == name } ?? Corpus.allCases.count, name) }
        let ordered = reports.keys.sorted { rank($0) < rank($1) }.map { reports[$0]! }
        // No report at all (no clip decoded) prints nothing, not an empty line.
        if !ordered.isEmpty {
            print(format == .json ? ordered.map(\.json.text).joined(separator: "\n")
                                  : ordered.map { "\(weights.card.name)\(mode) on \($0.text)" }.joined(separator: "\n\n"))
        }
        try finishOutput()
        if failures > 0 { throw Failure("\(failures) of \(clips.count) files could not be analysed") }
        if let skipped { throw Failure(skipped) }
    }
}

extension Corpus: ExpressibleByArgument {}

extension Evaluate {
    /// Each clip's normalisation; for `neutral`, a profile per actor from that actor's neutral clips.
    func speakerNormalisations(_ clips: [LabelledClip], config: Configuration, weights: ModelWeights) throws -> (String) -> Normalisation {
        switch calibration {
        case nil, .online?: return { _ in .online }
        case .none?: return { _ in .none }
        case .neutral?:
            let analyzer = ClipAnalyzer(classifier: EmotionClassifier(weights: weights), windows: config.windows, speech: config.speech)
            var means: [String: SpeakerMean] = [:]
            for clip in clips where clip.emotion == 0 {
                do { means[clip.speaker, default: SpeakerMean(bands: weights.card.features.melBands)].add(try analyzer.speakerMean(path: clip.path)) }
                catch { throw Failure("\(error)") }
            }
            var profiles: [String: Normalisation] = [:]
            for (speaker, mean) in means {
                guard let profile = SpeakerProfile(speech: mean, features: weights.card.features, source: "\(speaker) neutral clips") else { continue }
                profiles[speaker] = .profile(profile)
            }
            let speakerOf = Dictionary(clips.map { ($0.path, $0.speaker) }, uniquingKeysWith: { a, _ in a })
            if let missing = Set(clips.filter { ($0.emotion ?? 0) != 0 && means[$0.speaker] != nil }.map { $0.speaker }).subtracting(profiles.keys).min() {
                throw Failure("\(missing) has too little neutral speech to build a profile from")
            }
            return { profiles[speakerOf[$0]!]! }
        }
    }
}

/// "1-4,9" -> {1, 2, 3, 4, 9}; RAVDESS actor numbers have two digits.
func parseActors(_ text: String) throws -> Set<Int> {
    var actors = Set<Int>()
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
        let bounds = part.split(separator: "-", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard (1...2).contains(bounds.count), let lo = bounds.first!, let hi = bounds.last!, 1 <= lo, lo <= hi, hi <= 99 else {
            throw Failure("--actors: '\(part)' is not an actor number 1...99 or a range like 1-4")
        }
        actors.formUnion(lo...hi)
    }
    return actors
}

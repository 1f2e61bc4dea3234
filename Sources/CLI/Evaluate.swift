import ArgumentParser
import Features
import Foundation
import Model
import Output
import Streaming

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure accuracy on RAVDESS-named files (03-01-EE-II-SS-RR-AA): accuracy, UAR, recall, confusion matrix.",
        discussion: """
        Accuracy means something only on speakers the model never heard: the shipped model was trained on \
        RAVDESS actors 01-20, so evaluate it on other actors, or evaluate a cross-validation fold model \
        (Training/run_all.sh) on its held-out actors with --model and --actors.
        """)

    enum Format: String, ExpressibleByArgument { case text, json }

    /// Where a speaker-normalised model's speaker mean comes from, for comparing the three.
    enum Calibration: String, ExpressibleByArgument { case none, online, neutral }

    @Argument(help: "Folder searched recursively for RAVDESS-named audio files.")
    var directory: String

    @Option(help: "Output format: text or json.")
    var format: Format = .text

    @Option(help: "Only these actors, e.g. 1-4 or 17,19,21-24.")
    var actors: String?

    @Option(help: """
        Speaker normalisation to score: none (population mean), online (running mean of each clip's speech) or \
        neutral (a profile from the actor's neutral clips). Given, every mode scores the same clips: the non-neutral ones.
        """)
    var calibration: Calibration?

    @OptionGroup var parallel: ParallelOptions

    @OptionGroup var common: CommonOptions

    func run() throws {
        let wanted = try actors.map(parseActors)
        let found = try ravdessFiles(in: directory).filter { wanted?.contains($0.actor) ?? true }
        let clips = calibration == nil ? found : found.filter { $0.emotion != 0 }
        guard !clips.isEmpty else { throw Failure("\(directory): no RAVDESS-named audio files found") }
        let (config, weights) = try common.loadAnalysis()
        guard weights.card.labels.count == 8 else { throw Failure("evaluate needs a model with the 8 RAVDESS emotions") }
        if calibration != nil && weights.card.speakerNormalisation == nil {
            throw Failure("--calibration needs a speaker-normalised model; \(weights.card.name) is not")
        }
        let normalisations = try speakerNormalisations(found, config: config, weights: weights)
        var evaluation = Evaluation(labels: weights.card.labels)
        var failures = 0
        let progress = ProgressBar(total: clips.count)
        forEachAnalyzed(clips.map(\.path), weights: weights, config: config, threads: parallel.jobs, work: { analyzer, path in
            Result { try analyzer.analyze(path: path, normalisation: normalisations(path)) }
        }, deliver: { index, result in
            progress.advance()
            switch result {
            case .success(let r):
                let sex = r.sex.indices.max { r.sex[$0] < r.sex[$1] }
                evaluation.add(truth: clips[index].emotion, predicted: r.emotion.indices.max { r.emotion[$0] < r.emotion[$1] }!,
                               sexCorrect: weights.card.sexLabels.count == 2 ? sex == clips[index].sex : nil)
            case .failure(let error):
                failures += 1
                FileHandle.standardError.write("error: \(error)\n".data(using: .utf8)!)
            }
        })
        let mode = calibration.map { " with calibration \($0.rawValue)" } ?? ""
        print(format == .json ? evaluation.json.text : "\(weights.card.name)\(mode)\n" + evaluation.text)
        if failures > 0 { throw Failure("\(failures) of \(clips.count) files could not be analysed") }
    }
}

extension Evaluate {
    /// Each clip's normalisation; for `neutral`, a profile per actor from that actor's neutral clips.
    func speakerNormalisations(_ clips: [RavdessClip], config: Configuration, weights: ModelWeights) throws -> (String) -> Normalisation {
        switch calibration {
        case nil, .online?: return { _ in .online }
        case .none?: return { _ in .none }
        case .neutral?:
            let analyzer = ClipAnalyzer(classifier: EmotionClassifier(weights: weights), windows: config.windows, speech: config.speech)
            var means: [Int: SpeakerMean] = [:]
            for clip in clips where clip.emotion == 0 {
                do { means[clip.actor, default: SpeakerMean(bands: weights.card.features.melBands)].add(try analyzer.speakerMean(path: clip.path)) }
                catch { throw Failure("\(error)") }
            }
            var profiles: [Int: Normalisation] = [:]
            for (actor, mean) in means {
                guard let profile = SpeakerProfile(speech: mean, features: weights.card.features, source: "actor \(actor) neutral clips") else { continue }
                profiles[actor] = .profile(profile)
            }
            let actorOf = Dictionary(clips.map { ($0.path, $0.actor) }, uniquingKeysWith: { a, _ in a })
            if let missing = Set(clips.map(\.actor)).subtracting(profiles.keys).min() {
                throw Failure("actor \(missing) has no neutral clips to build a profile from")
            }
            return { profiles[actorOf[$0]!]! }
        }
    }
}

/// A RAVDESS clip: its path and what its name says.
struct RavdessClip {
    let path: String
    /// 0-based, in the order neutral, calm, happy, sad, angry, fearful, disgust, surprised.
    let emotion: Int
    let actor: Int
    /// 0 male (odd actors), 1 female (even actors), the model card's sexLabels order.
    var sex: Int { actor % 2 == 0 ? 1 : 0 }

    init?(path: String) {
        let url = URL(fileURLWithPath: path)
        guard isAudioFile(path) else { return nil }
        let fields = url.deletingPathExtension().lastPathComponent.split(separator: "-")
        // Vocal channel 01 is speech; 02 (song) is another task and must not join speech profiles.
        guard fields.count == 7, fields.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isNumber) }), fields[1] == "01",
              let emotion = Int(fields[2]), (1...8).contains(emotion), let actor = Int(fields[6]) else { return nil }
        self.path = path
        self.emotion = emotion - 1
        self.actor = actor
    }
}

func ravdessFiles(in directory: String) throws -> [RavdessClip] {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw Failure("\(directory): not a directory")
    }
    return audioFiles(in: directory).compactMap(RavdessClip.init(path:))
}

/// "1-4,9" -> {1, 2, 3, 4, 9}
func parseActors(_ text: String) throws -> Set<Int> {
    var actors = Set<Int>()
    for part in text.split(separator: ",") {
        let bounds = part.split(separator: "-").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard (1...2).contains(bounds.count), let lo = bounds.first!, let hi = bounds.last!, lo <= hi else {
            throw Failure("--actors: '\(part)' is not a number or a range like 1-4")
        }
        actors.formUnion(lo...hi)
    }
    return actors
}

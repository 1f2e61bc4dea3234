import Output

/// One corpus's figures: over the eight emotions, and over the classes the corpus has.
public struct CorpusReport: Sendable {
    public let corpus: String
    /// Indices into `Corpus.emotions`: "accuracy over its own classes" and its UAR choose among these.
    public let classes: [Int]
    public private(set) var eight = Scores(labels: Corpus.emotions)
    public private(set) var own: Scores

    public init(corpus: String, classes: [Int]) {
        (self.corpus, self.classes) = (corpus, classes)
        own = Scores(labels: classes.map { Corpus.emotions[$0] })
    }

    /// `emotion` and `sex` nil: no answer for the clip (no speech heard), wrong for emotion and, when
    /// the model has a sex head (`sexed`), for sex.
    public mutating func add(_ clip: LabelledClip, emotion: [Float]?, sex: [Float]?, sexed: Bool) {
        // Sex is scored where the clip's is known and the model has a sex head.
        let sexCorrect = sexed ? clip.sex.map { truth in sex.map { s in s.indices.max { s[$0] < s[$1] }! == truth } ?? false } : nil
        eight.add(truth: clip.emotion, predicted: emotion.map { e in e.indices.max { e[$0] < e[$1] }! }, sexCorrect: sexCorrect)
        let best = classes.isEmpty ? nil : emotion.map { e in classes.indices.max { e[classes[$0]] < e[classes[$1]] }! }
        own.add(truth: clip.emotion.flatMap { classes.firstIndex(of: $0) }, predicted: best, sexCorrect: sexCorrect)
    }

    public var text: String {
        var lines = ["\(corpus.uppercased()), eight emotions: " + eight.text]
        if own.labels.count < eight.labels.count {
            lines.append("\nover its own \(own.labels.count) classes: " + own.text)
        }
        return lines.joined(separator: "\n")
    }

    public var json: JSON {
        guard case .object(let fields) = eight.json else { return eight.json }
        return .object([("corpus", .string(corpus))] + fields + [("own_classes", own.json)])
    }
}

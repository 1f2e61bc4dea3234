import Foundation

/// A one-line error about a folder or manifest of labelled clips.
public struct EvaluationError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The emotional-speech corpora `evaluate` reads, and what their file names say (mirrored by
/// Training/corpora.py, so the Swift program scores the same clips with the same labels).
public enum Corpus: String, CaseIterable, Comparable, Sendable {
    case ravdess, tess, savee, urdu

    /// The product's eight emotions, in the model card's order.
    public static let emotions = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]

    /// Indices (into `emotions`) of the classes this corpus has: "accuracy over its own classes" and
    /// its UAR choose among these only.
    public var classes: [Int] {
        switch self {
        case .ravdess: return Array(0..<8)
        case .tess, .savee: return [0, 2, 3, 4, 5, 6, 7]
        case .urdu: return [0, 2, 3, 4]
        }
    }

    public static func < (a: Corpus, b: Corpus) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }

    private static let tessNames = ["angry": 4, "disgust": 6, "fear": 5, "happy": 2, "neutral": 0, "ps": 7, "sad": 3]
    private static let saveeNames = ["a": 4, "d": 6, "f": 5, "h": 2, "n": 0, "sa": 3, "su": 7]
    private static let urduNames = ["Angry": 4, "Happy": 2, "Neutral": 0, "Sad": 3]

    /// RAVDESS's MM-VV-EE-II-SS-RR-AA, only with values RAVDESS uses: modality 01-03 (03 audio-only),
    /// vocal channel 01 (speech: 02, song, is another task), emotion 01-08, intensity 01-02 (neutral
    /// only 01), statement and repetition 01-02, actor 01-24.
    public static func ravdessFields(_ stem: String) -> (emotion: Int, actor: Int)? {
        let f = stem.split(separator: "-", omittingEmptySubsequences: false)
        guard f.count == 7, f.allSatisfy({ $0.count == 2 && $0.allSatisfy { ("0"..."9").contains($0) } }) else { return nil }
        let v = f.map { Int($0)! }
        guard (1...3).contains(v[0]), v[1] == 1, (1...8).contains(v[2]), (1...2).contains(v[3]), v[2] != 1 || v[3] == 1,
              (1...2).contains(v[4]), (1...2).contains(v[5]), (1...24).contains(v[6]) else { return nil }
        return (v[2], v[6])
    }

    /// (emotion, speaker, sex: 0 male, 1 female) from a file name of this corpus, or nil.
    public func parse(_ url: URL) -> (emotion: Int, speaker: String, sex: Int)? {
        let stem = url.deletingPathExtension().lastPathComponent
        switch self {
        case .ravdess:
            guard let f = Self.ravdessFields(stem) else { return nil }
            return (f.emotion - 1, String(format: "actor %02d", f.actor), f.actor % 2 == 0 ? 1 : 0)
        case .tess:  // OAF_back_angry (one original is OA_bite_neutral); both speakers are women
            let f = stem.split(separator: "_")
            guard f.count >= 3, ["OAF", "OA", "YAF"].contains(f[0]), let emotion = Self.tessNames[String(f.last!)] else { return nil }
            return (emotion, f[0].prefix(2) + "F", 1)
        case .savee:  // DC_a01; all four speakers are men
            let f = stem.split(separator: "_")
            guard f.count == 2, let emotion = Self.saveeNames[String(f[1].prefix { !$0.isNumber })] else { return nil }
            return (emotion, String(f[0]), 0)
        case .urdu:  // Angry/SM1_F10_A010: the folder is the emotion; SM* male, SF* female
            let speaker = stem.split(separator: "_").first.map(String.init) ?? ""
            guard let emotion = Self.urduNames[url.deletingLastPathComponent().lastPathComponent],
                  speaker.hasPrefix("SM") || speaker.hasPrefix("SF") else { return nil }
            return (emotion, speaker, speaker.hasPrefix("SM") ? 0 : 1)
        }
    }
}

/// A clip with what its manifest row or its name says: emotion, speaker and speaker sex.
public struct LabelledClip: Sendable {
    public let path: String
    /// The corpus: its folder's name for a manifest's clips, else the naming the file follows.
    public let corpus: String
    /// Index into `Corpus.emotions`; nil where the corpus's label has none among the eight (the clip
    /// then counts for speaker sex only).
    public let emotion: Int?
    public let speaker: String
    /// 0 male, 1 female (the model card's sexLabels order); nil when not known.
    public let sex: Int?
    /// RAVDESS actor number (for --actors), nil elsewhere.
    public let actor: Int?

    public init(path: String, corpus: String, emotion: Int?, speaker: String, sex: Int?) {
        (self.path, self.corpus, self.emotion, self.speaker, self.sex) = (path, corpus, emotion, speaker, sex)
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        actor = corpus == Corpus.ravdess.rawValue ? Corpus.ravdessFields(stem)?.actor : nil
    }

    /// The clip as `corpus` names it, or as the first corpus whose naming it follows.
    public init?(path: String, corpus: Corpus?) {
        let url = URL(fileURLWithPath: path)
        guard isAudioFile(path) else { return nil }
        for candidate in corpus.map({ [$0] }) ?? Corpus.allCases {
            if let info = candidate.parse(url) {
                self.init(path: path, corpus: candidate.rawValue, emotion: info.emotion, speaker: info.speaker, sex: info.sex)
                return
            }
        }
        return nil
    }
}

/// Every labelled clip under `directory`, in path order, and what could not be read there. A folder
/// with a manifest (`clips.csv`) is read from it; audio files outside such folders by their names.
/// With `corpus`, every file is read by that corpus's naming and manifests are not looked at.
public func labelledClips(in directory: String, corpus: Corpus?) throws -> (clips: [LabelledClip], unreadable: [String]) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw EvaluationError("\(directory): not a directory")
    }
    let found = audioFiles(in: directory, manifests: corpus == nil)
    let folders = found.manifests.map { ($0 as NSString).deletingLastPathComponent + "/" }
    let named = found.files.filter { file in !folders.contains { file.hasPrefix($0) } }.compactMap { LabelledClip(path: $0, corpus: corpus) }
    let listed = try found.manifests.flatMap(Manifest.read)
    return ((named + listed).sorted { $0.path < $1.path }, found.unreadable)
}

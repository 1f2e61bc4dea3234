import Foundation
import Output

/// Accuracy figures for labelled clips: accuracy, unweighted average recall (the mean of per-class
/// recalls, fair to rare classes), per-class recall, the confusion matrix and speaker-sex accuracy.
/// A clip the program gave no answer for (no speech heard) counts as wrong, emotion and sex alike:
/// a user would have seen nothing. Threading: a value type, freely shared.
public struct Scores: Sendable {
    public let labels: [String]
    /// confusion[truth][predicted]
    public private(set) var confusion: [[Int]]
    /// unanswered[truth]: clips with no answer (no speech heard)
    public private(set) var unanswered: [Int]
    public private(set) var sexCorrect = 0
    public private(set) var sexTotal = 0

    public init(labels: [String]) {
        self.labels = labels
        confusion = Array(repeating: Array(repeating: 0, count: labels.count), count: labels.count)
        unanswered = Array(repeating: 0, count: labels.count)
    }

    /// `predicted` nil: the program gave no answer for the clip. `truth` nil: a clip whose emotion is
    /// not known (its corpus's label has no counterpart), counted for speaker sex only.
    public mutating func add(truth: Int?, predicted: Int?, sexCorrect: Bool? = nil) {
        if let truth {
            if let predicted { confusion[truth][predicted] += 1 } else { unanswered[truth] += 1 }
        }
        if let sexCorrect {
            sexTotal += 1
            if sexCorrect { self.sexCorrect += 1 }
        }
    }

    public var total: Int { confusion.joined().reduce(0, +) + unansweredTotal }
    public var unansweredTotal: Int { unanswered.reduce(0, +) }
    public var accuracy: Double { ratio(labels.indices.map { confusion[$0][$0] }.reduce(0, +), total) }
    public var recalls: [Double?] {
        labels.indices.map { c in
            let clips = confusion[c].reduce(0, +) + unanswered[c]
            return clips == 0 ? nil : ratio(confusion[c][c], clips)
        }
    }
    public var unweightedAverageRecall: Double {
        let present = recalls.compactMap { $0 }
        return present.isEmpty ? 0 : present.reduce(0, +) / Double(present.count)
    }
    public var sexAccuracy: Double? { sexTotal == 0 ? nil : ratio(sexCorrect, sexTotal) }

    private func ratio(_ a: Int, _ b: Int) -> Double { b == 0 ? 0 : Double(a) / Double(b) }

    public var text: String {
        var lines = [String(format: "clips %d   accuracy %.1f %%   UAR %.1f %%", total, 100 * accuracy, 100 * unweightedAverageRecall)]
        if let sex = sexAccuracy {
            lines[0] += String(format: "   speaker sex %.1f %%", 100 * sex) + (sexTotal == total ? "" : " of \(sexTotal) clips")
        }
        if unansweredTotal > 0 { lines[0] += "   (\(unansweredTotal) with no speech heard, counted as wrong)" }
        let width = max(9, (labels.map(\.count).max() ?? 0) + 1)
        func pad(_ s: String) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }
        let silent = unansweredTotal > 0 ? pad("none") : ""
        lines.append("")
        lines.append(pad("") + labels.map { pad(String($0.prefix(width - 1))) }.joined() + silent + pad("recall"))
        for (c, row) in confusion.enumerated() {
            let recall = recalls[c].map { String(format: "%.1f%%", 100 * $0) } ?? "-"
            let none = silent.isEmpty ? "" : pad(String(unanswered[c]))
            lines.append(pad(labels[c]) + row.map { pad(String($0)) }.joined() + none + pad(recall))
        }
        return lines.joined(separator: "\n")
    }

    public var json: JSON {
        var fields: [(String, JSON)] = [
            // No clip with a known emotion: no accuracy to speak of (null, not 0).
            ("clips", .number(Double(total))), ("accuracy", total == 0 ? .null : .rounded(accuracy)),
            ("uar", total == 0 ? .null : .rounded(unweightedAverageRecall)),
            ("recall", .object(zip(labels, recalls).map { ($0.0, $0.1.map { .rounded($0) } ?? .null) })),
            ("labels", .array(labels.map { .string($0) })),
            ("confusion", .array(confusion.map { .array($0.map { .number(Double($0)) }) })),
            ("no_speech", .array(unanswered.map { .number(Double($0)) })),
        ]
        if let sex = sexAccuracy { fields += [("sex_accuracy", .rounded(sex)), ("sex_clips", .number(Double(sexTotal)))] }
        return .object(fields)
    }
}

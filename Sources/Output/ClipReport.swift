import Foundation
import Model
import Streaming

/// Output formats of `analyze`.
public enum ReportFormat: String, CaseIterable, Sendable {
    case text, jsonl, csv
}

/// Renders analysis results, one file at a time, in the chosen format.
/// Threading: a value type; call from the thread that writes the output.
public struct ClipReport: Sendable {
    public let format: ReportFormat
    public let labels: [String]
    public let sexLabels: [String]

    public init(format: ReportFormat, card: ModelCard) {
        self.format = format
        labels = card.labels
        sexLabels = card.sexLabels
    }

    /// The line(s) printed before any result (the CSV header).
    public var header: String? {
        format == .csv ? (["file", "duration", "label", "confidence"] + labels + ["sex", "sex_confidence", "error"]).joined(separator: ",") : nil
    }

    public func render(_ r: ClipResult) -> String {
        let (label, confidence) = top(r.emotion, labels)
        let (sex, sexConfidence) = top(r.sex, sexLabels)
        switch format {
        case .jsonl:
            var fields: [(String, JSON)] = [
                ("file", .string(r.path)), ("duration", .rounded(r.duration, places: 3)),
                ("label", .string(label)), ("confidence", .rounded(Double(confidence))),
                ("probabilities", probabilities(r.emotion)),
                ("sex", .object([("label", .string(sex)), ("confidence", .rounded(Double(sexConfidence)))])),
            ]
            if let segments = r.segments { fields.append(("segments", .array(segments.map(segment)))) }
            return JSON.object(fields).text
        case .csv:
            return ([csvField(r.path), String(format: "%.3f", r.duration), label, String(format: "%.4f", confidence)]
                + r.emotion.map { String(format: "%.4f", $0) } + [sex, String(format: "%.4f", sexConfidence), ""]).joined(separator: ",")
        case .text:
            let ranked = zip(labels, r.emotion).sorted { $0.1 > $1.1 }.prefix(3)
                .map { "\($0.0) \(percent($0.1))" }.joined(separator: ", ")
            var lines = ["\(r.path)  \(String(format: "%.1f", r.duration)) s  \(label) (\(ranked)), voice \(sex) \(percent(sexConfidence))"]
            for s in r.segments ?? [] {
                let (l, c) = s.prediction.map { top($0.emotion, labels) } ?? ("silence", 0)
                lines.append(String(format: "  %7.2f-%7.2f s  ", s.start, s.end) + (s.voice ? "\(l) \(percent(c))" : "silence"))
            }
            return lines.joined(separator: "\n")
        }
    }

    public func renderError(path: String, message: String) -> String {
        switch format {
        case .jsonl: return JSON.object([("file", .string(path)), ("error", .string(message))]).text
        case .csv: return ([csvField(path)] + Array(repeating: "", count: labels.count + 5) + [csvField(message)]).joined(separator: ",")
        case .text: return "\(path)  error: \(message)"
        }
    }

    public func probabilities(_ p: [Float]) -> JSON {
        .object(zip(labels, p).map { ($0.0, .rounded(Double($0.1))) })
    }

    func segment(_ s: WindowResult) -> JSON {
        let (label, confidence) = s.prediction.map { top($0.emotion, labels) } ?? ("silence", 0)
        return .object([("start", .rounded(s.start, places: 3)), ("end", .rounded(s.end, places: 3)),
                        ("label", .string(label)), ("confidence", s.voice ? .rounded(Double(confidence)) : .null),
                        ("voice", .bool(s.voice))])
    }
}

/// The most probable label and its probability.
public func top(_ p: [Float], _ labels: [String]) -> (String, Float) {
    let i = p.indices.max { p[$0] < p[$1] } ?? 0
    return (labels.indices.contains(i) ? labels[i] : "?", p.indices.contains(i) ? p[i] : 0)
}

public func percent(_ p: Float) -> String { "\(Int((p * 100).rounded()))%" }

func csvField(_ s: String) -> String {
    s.contains(where: { ",\"\n\r".contains($0) }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
}

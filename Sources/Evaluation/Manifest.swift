import Foundation

/// A corpus folder's `clips.csv`: one row per clip, with the columns `file` (relative to the folder),
/// `speaker`, `sex` (male, female or unknown), `emotion` (one of the eight, or empty where the
/// corpus's own label has none) and any others (`label`, `note`), which are not read. The corpus is
/// the folder's name. Threading: stateless.
public enum Manifest {
    public static let fileName = "clips.csv"

    /// The clips `path` lists, or a one-line error naming the line that is wrong.
    public static func read(_ path: String) throws -> [LabelledClip] {
        guard let data = FileManager.default.contents(atPath: path) else { throw EvaluationError("\(path): cannot read it") }
        let text = String(decoding: data, as: UTF8.self)
        let rows = csvRows(text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text)
        guard let header = rows.first?.fields.map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) else {
            throw EvaluationError("\(path): empty manifest")
        }
        var column: [String: Int] = [:]
        for name in ["file", "speaker", "sex", "emotion"] {
            guard let i = header.firstIndex(of: name) else {
                throw EvaluationError("\(path): no '\(name)' column (a manifest has file, speaker, sex, emotion)")
            }
            column[name] = i
        }
        let folder = (path as NSString).deletingLastPathComponent
        let corpus = (folder as NSString).lastPathComponent.lowercased()
        return try rows.dropFirst().compactMap { row in
            if row.fields.allSatisfy(\.isEmpty) { return nil }
            func field(_ name: String) throws -> String {
                let i = column[name]!
                guard i < row.fields.count else { throw EvaluationError("\(path) line \(row.line): \(row.fields.count) fields, no '\(name)'") }
                return row.fields[i].trimmingCharacters(in: .whitespaces)
            }
            let file = try field("file"), speaker = try field("speaker")
            guard !file.isEmpty else { throw EvaluationError("\(path) line \(row.line): empty 'file'") }
            let emotionName = try field("emotion").lowercased()
            let emotion = Corpus.emotions.firstIndex(of: emotionName)
            guard emotion != nil || emotionName.isEmpty else {
                throw EvaluationError("\(path) line \(row.line): emotion '\(emotionName)' is not one of \(Corpus.emotions.joined(separator: ", ")) (or empty)")
            }
            let sex: Int?
            switch try field("sex").lowercased() {
            case "male": sex = 0
            case "female": sex = 1
            case "", "unknown": sex = nil
            case let other: throw EvaluationError("\(path) line \(row.line): sex '\(other)' is not male, female or unknown")
            }
            let clip = file.hasPrefix("/") ? file : (folder as NSString).appendingPathComponent(file)
            return LabelledClip(path: clip, corpus: corpus, emotion: emotion, speaker: speaker.isEmpty ? file : speaker, sex: sex)
        }
    }

    /// RFC 4180 rows: fields separated by commas, quoted ones may hold commas, quotes ("") and line
    /// breaks; each row with the line it starts on.
    public static func csvRows(_ text: String) -> [(line: Int, fields: [String])] {
        var rows: [(line: Int, fields: [String])] = []
        var fields: [String] = [], field = "", quoted = false, line = 1, start = 1
        var characters = text.makeIterator()
        var pending: Character?
        func endRow() {
            fields.append(field)
            rows.append((start, fields))
            (fields, field) = ([], "")
        }
        while let c = pending ?? characters.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    let next = characters.next()
                    if next == "\"" { field.append("\"") } else { quoted = false; pending = next }
                } else {
                    if c == "\n" || c == "\r\n" { line += 1 }
                    field.append(c)
                }
            } else if c == "\"" && field.isEmpty {
                quoted = true
            } else if c == "," {
                fields.append(field)
                field = ""
            } else if c == "\n" || c == "\r\n" || c == "\r" {
                endRow()
                line += 1
                start = line
            } else {
                field.append(c)
            }
        }
        if !field.isEmpty || !fields.isEmpty { endRow() }
        return rows
    }
}

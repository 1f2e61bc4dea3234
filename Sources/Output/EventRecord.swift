import Foundation
import Streaming

/// Formats for live events.
public enum EventFormat: String, CaseIterable, Codable, Sendable {
    case jsonl, csv
}

/// Renders live events as log lines: wall-clock time, stream offset, label, confidence, voice flag,
/// all probabilities, the health counters and the window's speaker sex. Threading: a value type, freely shared.
public struct EventRecord: Sendable {
    public let labels: [String]
    public let sexLabels: [String]
    public let format: EventFormat

    public init(labels: [String], sexLabels: [String], format: EventFormat) {
        self.labels = labels
        self.sexLabels = sexLabels
        self.format = format
    }

    public var csvHeader: String {
        (["time", "offset", "label", "confidence", "voice"] + labels
            + ["window_label", "norm", "level_dbfs", "dropped", "overruns", "sex", "sex_confidence"]).joined(separator: ",")
    }

    /// One line, without the newline.
    public func line(_ e: LiveEvent, at time: Date, dropped: Int, overruns: Int) -> String {
        let label = e.label.map { labels[$0] } ?? "silence"
        var confidence: Double?
        if let l = e.label, let p = e.smoothed, p.indices.contains(l) { confidence = Double(p[l]) }
        let windowLabel = e.window.map { top($0.emotion, labels).0 }
        // The window's own sex estimate: voiced windows only, like window_label.
        let sex = e.window.map { top($0.sex, sexLabels) }
        let stamp = Self.timestamp(time)
        switch format {
        case .jsonl:
            let probabilities: JSON = e.smoothed.map { p in .object(zip(labels, p).map { ($0.0, JSON.rounded(Double($0.1))) }) } ?? .null
            let fields: [(String, JSON)] = [
                ("time", .string(stamp)), ("offset", .rounded(e.end, places: 3)), ("label", .string(label)),
                ("confidence", confidence.map { JSON.rounded($0) } ?? .null), ("voice", .bool(e.voice)),
                ("probabilities", probabilities), ("window_label", windowLabel.map { JSON.string($0) } ?? .null),
                ("norm", .string(e.normalisation)),
                ("level_dbfs", .rounded(e.levelDbfs, places: 1)),
                ("dropped", .number(Double(dropped))), ("overruns", .number(Double(overruns))),
                ("sex", sex.map { JSON.object([("label", .string($0.0)), ("confidence", .rounded(Double($0.1)))]) } ?? .null),
            ]
            return JSON.object(fields).text
        case .csv:
            let probabilities: [String] = e.smoothed.map { $0.map { String(format: "%.4f", $0) } } ?? Array(repeating: "", count: labels.count)
            let head: [String] = [stamp, String(format: "%.3f", e.end), label, confidence.map { String(format: "%.4f", $0) } ?? "",
                                  e.voice ? "true" : "false"]
            let tail: [String] = [windowLabel ?? "", e.normalisation, String(format: "%.1f", e.levelDbfs), String(dropped), String(overruns),
                                  sex?.0 ?? "", sex.map { String(format: "%.4f", $0.1) } ?? ""]
            return (head + probabilities + tail).joined(separator: ",")
        }
    }

    /// ISO 8601 with milliseconds and the local offset: sortable, and unambiguous across DST.
    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = .current
        return formatter.string(from: date)
    }
}

/// An append-only log file, one complete line per write(2) and flushed per line, so a kill at any
/// moment leaves only complete lines. `reopen()` (on SIGHUP) follows logrotate's rename.
/// Threading: not thread-safe; used from the analyzer queue only.
public final class EventLog {
    public let path: String
    private var fd: Int32
    private let header: String?

    /// Opens (creating or appending to) `path`; `header` is written when the file is new or empty.
    public init(path: String, header: String?) throws {
        self.path = path
        self.header = header
        fd = -1
        try open()
    }

    deinit { if fd >= 0 { close(fd) } }

    private func open() throws {
        // Non-blocking: a FIFO nobody reads is an error now, not a hang at start-up.
        let fd = Foundation.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0o644)
        guard fd >= 0 else {
            throw LogError(path: path, reason: errno == ENXIO ? "it is a FIFO no process is reading" : String(cString: strerror(errno)))
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { self.fd = fd; return }
        var cutShort = false
        if info.st_size > 0 {
            guard let unfinished = unfinishedLastLine() else {
                close(fd)
                throw LogError(path: path, reason: "it holds another log format (\(header == nil ? "not JSON lines" : "not this CSV header")); choose a new file")
            }
            cutShort = unfinished
        }
        self.fd = fd
        // A line a crash or a full disk cut short stays cut, but the next event starts on a line of its own.
        if cutShort { try write("") }
        if let header, info.st_size == 0 { try write(header) }
    }

    /// Whether the file's last line lacks its newline, or nil when the file is not a log of this
    /// format: a CSV log starts with this header, a JSON-lines log with a line that is a JSON object.
    private func unfinishedLastLine() -> Bool? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let start = (try? handle.read(upToCount: 4096)) ?? Data()
        let firstLine = start.split(separator: UInt8(ascii: "\n"), maxSplits: 1, omittingEmptySubsequences: false).first ?? Data()
        let matches = header.map { Data($0.utf8) == firstLine }
            ?? ((try? JSONSerialization.jsonObject(with: firstLine)) as? [String: Any] != nil)
        guard matches, let end = try? handle.seekToEnd(), end > 0 else { return nil }
        try? handle.seek(toOffset: end - 1)
        return (try? handle.read(upToCount: 1)) != Data([UInt8(ascii: "\n")])
    }

    /// Appends `line` and a newline in one system call. If only part of it could be written (a full
    /// disk), the part is cut off again, so the file still holds complete lines only.
    public func write(_ line: String) throws {
        let bytes = Array((line + "\n").utf8)
        let before = lseek(fd, 0, SEEK_END)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let reason = String(cString: strerror(n == 0 ? ENOSPC : errno))
                // Only our own tail: another writer's line after it stays.
                if offset > 0, before >= 0, lseek(fd, 0, SEEK_END) == before + off_t(offset) { _ = ftruncate(fd, before) }
                throw LogError(path: path, reason: reason)
            }
            offset += n
        }
    }

    /// Reopens the path: after logrotate moves the file, new lines go to a new one. If the path
    /// cannot be opened, lines keep going to the old file rather than being lost.
    public func reopen() throws {
        let old = fd
        do { try open() } catch {
            fd = old
            throw error
        }
        close(old)
    }
}

public struct LogError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): cannot write log (\(reason))" }
}

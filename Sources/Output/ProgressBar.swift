import Foundation

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
/// Threading: `advance` may be called from any thread (it serialises itself).
/// Unchecked Sendable: `done` is read and written under `lock` only.
public final class ProgressBar: @unchecked Sendable {
    private let total: Int
    private let enabled: Bool
    private let lock = NSLock()
    private var done = 0
    private let started = Date()

    public init(total: Int, enabled: Bool = isatty(STDERR_FILENO) == 1) {
        self.total = total
        self.enabled = enabled && total > 1
    }

    /// Clears the bar's line, so that output to the same terminal starts on a clean line.
    public func clear() {
        lock.lock()
        defer { lock.unlock() }
        if enabled && done < total { FileHandle.standardError.write("\r\u{1B}[K".data(using: .utf8)!) }
    }

    public func advance() {
        lock.lock()
        defer { lock.unlock() }
        done += 1
        guard enabled else { return }
        let width = 30, filled = total == 0 ? width : width * done / total
        let rate = Double(done) / max(Date().timeIntervalSince(started), 1e-3)
        let line = "\r[" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
            + "] \(done)/\(total) files  " + String(format: "%.1f files/s", rate)
        FileHandle.standardError.write((done == total ? line + "\u{1B}[K\n" : line + "\u{1B}[K").data(using: .utf8)!)
    }
}

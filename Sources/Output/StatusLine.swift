import Foundation
import Streaming

/// The live display: one terminal line redrawn in place with the input level, speech or silence,
/// the current emotion, bars for the top classes and the health counters. Parts are dropped from
/// the right when the terminal is narrow; colour only when allowed.
/// Threading: not thread-safe; drawn from the analyzer queue only.
public final class StatusLine {
    public let labels: [String]
    public let colour: Bool
    private let fd: Int32
    private var started = false

    /// `colour` should be false when NO_COLOR is set or the output is not a terminal.
    public init(labels: [String], fd: Int32 = STDOUT_FILENO, colour: Bool) {
        self.labels = labels
        self.fd = fd
        self.colour = colour
    }

    /// Colour unless NO_COLOR is set (https://no-color.org) or `fd` is not a terminal.
    public static func colourAllowed(fd: Int32 = STDOUT_FILENO) -> Bool {
        isatty(fd) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"].map(\.isEmpty) ?? true
    }

    /// The terminal's width now (it may have been resized), 80 when unknown.
    public var width: Int {
        var size = winsize()
        return ioctl(fd, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 0 ? Int(size.ws_col) : 80
    }

    public func draw(_ event: LiveEvent, dropped: Int, overruns: Int) {
        if !started {
            emit("\u{1B}[?25l")  // hide the cursor while the line is live
            started = true
        }
        emit("\r" + render(event, width: width, dropped: dropped, overruns: overruns) + "\u{1B}[K")
    }

    /// Clears the line and restores the cursor; call on exit.
    public func finish() {
        guard started else { return }
        emit("\r\u{1B}[K\u{1B}[?25h")
        started = false
    }

    /// The line for `event`, at most `width - 1` visible characters (the last column stays free so
    /// terminals never wrap).
    /// On a narrow terminal the bars go first (the third first), so the label, normalisation and
    /// counters stay.
    public func render(_ e: LiveEvent, width: Int, dropped: Int, overruns: Int) -> String {
        var parts: [(text: String, visible: Int, expendable: Int)] = []
        let meter = levelMeter(dbfs: e.levelDbfs, colour: colour)
        parts.append((meter.text, meter.visible, 0))
        if let label = e.label, let p = e.smoothed {
            let name = labels[label].uppercased() + " \(percent(p[label]))"
            parts.append((paint(name, 1), name.count, 0))
            let ranked = p.indices.sorted { p[$0] > p[$1] }.prefix(3)
            for (rank, i) in ranked.enumerated() {
                let bar = labels[i] + " " + String(repeating: "█", count: max(1, Int((p[i] * 8).rounded())))
                parts.append((bar, bar.count, 1 + rank))
            }
        } else {
            parts.append((e.voice ? "speech" : paint("silence", 2), e.voice ? 6 : 7, 0))
        }
        let norm = "norm \(e.normalisation)"
        parts.append((norm, norm.count, 0))
        let counters = "drop \(dropped) xrun \(overruns)"
        parts.append((dropped + overruns > 0 ? paint(counters, 33) : counters, counters.count, 0))
        while parts.reduce(-2, { $0 + 2 + $1.visible }) > width - 1,
              let drop = parts.indices.filter({ parts[$0].expendable > 0 }).max(by: { parts[$0].expendable < parts[$1].expendable }) {
            parts.remove(at: drop)
        }

        var line = "", used = 0
        for part in parts {
            let needed = (used == 0 ? 0 : 2) + part.visible
            guard used + needed <= width - 1 else { break }
            line += (used == 0 ? "" : "  ") + part.text
            used += needed
        }
        return line
    }

    private func paint(_ text: String, _ code: Int) -> String { Output.paint(text, code, colour: colour) }

    private func emit(_ text: String) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
    }
}

/// A 10-cell input level meter from -60 to 0 dBFS, green, then yellow, then red near clipping.
public func levelMeter(dbfs: Double, colour: Bool) -> (text: String, visible: Int) {
    let level = min(max((dbfs + 60) / 60, 0), 1)
    let cells = Int((level * 10).rounded())
    let meter = paint(String(repeating: "█", count: cells), level > 0.9 ? 31 : level > 0.7 ? 33 : 32, colour: colour)
        + String(repeating: "·", count: 10 - cells)
    let db = String(format: "%4.0f dB", dbfs)
    return ("▕" + meter + "▏" + db, 12 + db.count)
}

/// `text` in an SGR colour or style when colour is allowed.
func paint(_ text: String, _ code: Int, colour: Bool) -> String {
    colour ? "\u{1B}[\(code)m" + text + "\u{1B}[0m" : text
}

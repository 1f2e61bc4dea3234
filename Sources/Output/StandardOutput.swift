import Foundation

/// Standard output that reports failure: a full disk (`>/dev/full`) or a reader that went away
/// (`| head -1`) is an error the caller acts on, not lines silently lost with exit status 0.
/// Threading: use from one thread at a time (stdio's buffer is shared).
public enum StandardOutput {
    public struct Failure: Error, CustomStringConvertible {
        public let reason: String
        public var description: String { "cannot write to standard output (\(reason))" }
        /// The reader has gone: nothing written later can reach anyone.
        public var isClosed: Bool { reason == String(cString: strerror(EPIPE)) }
    }

    /// Writes `line` and a newline, then flushes.
    public static func line(_ line: String) throws {
        print(line)
        try flush()
    }

    /// Flushes what `print` buffered; throws if any of it could not be written. (All of stdio's
    /// streams: naming `stdout` is not concurrency-safe in Swift 6, and stdout is the one written.)
    public static func flush() throws {
        if fflush(nil) != 0 { throw Failure(reason: String(cString: strerror(errno))) }
    }
}

import ArgumentParser
import Foundation
import Output

@main
struct EmotionMonitor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emotion-monitor",
        abstract: "Speech-emotion monitor: which of eight emotions a voice carries, live or from recordings.",
        subcommands: [Listen.self, Analyze.self, Calibrate.self, Evaluate.self, Devices.self, Bench.self]
    )
}

/// A one-line error for the user; ArgumentParser prints it as "Error: ..." and exits non-zero.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Ends a command's output: what `print` buffered must reach standard output, or the command fails
/// (`analyze ... >/dev/full` must not exit 0 having written nothing).
func finishOutput() throws {
    do { try StandardOutput.flush() } catch { throw Failure("\(error)") }
}

import ArgumentParser
import Foundation

/// How many files to analyse at once, for the commands that take many.
struct ParallelOptions: ParsableArguments {
    @Option(help: "Files analysed in parallel (default: all cores).")
    var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
    }
}

import ArgumentParser

/// Where live audio comes from, for the commands that listen: a capture device or recordings.
struct SourceOptions: ParsableArguments {
    @Option(help: "ALSA capture device (default: config listen.device). See 'emotion-monitor devices'.")
    var device: String?

    @Option(parsing: .upToNextOption, help: "Recordings to use instead of a microphone, streamed back to back through the live pipeline.")
    var replay: [String] = []

    func validate() throws {
        if !replay.isEmpty && device != nil { throw ValidationError("use either --device or --replay") }
    }
}

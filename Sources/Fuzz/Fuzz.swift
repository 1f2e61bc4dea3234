import Features
import Foundation
import Model
import Streaming

/// libFuzzer target for the inputs a user hands the program: audio files (libsndfile through
/// `AudioFile`, then the whole front end), model cards and speaker profiles. Every input must end
/// in a result or a thrown error: a trap, a crash or a hang is a finding. `Tests/fuzz.sh` builds it
/// with `-sanitize=fuzzer` and runs it for a bounded time over the seed corpus in Tests/FuzzCorpus.
///
/// The first byte chooses the parser, the rest is the file.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
    guard count > 0 else { return 0 }
    let body = Data(bytes: bytes + 1, count: count - 1)
    switch bytes[0] % 3 {
    case 0: decodeAudio(body)
    case 1: _ = try? ModelCard.load(from: write(body, suffix: "json"))
    default: loadProfile(body)
    }
    return 0
}

private let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("emotion-monitor-fuzz-\(getpid())")

private func write(_ data: Data, suffix: String) -> URL {
    try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    let url = scratch.appendingPathComponent("input.\(suffix)")
    try? data.write(to: url)
    return url
}

/// Decodes, resamples and computes features for the whole input, as `analyze` does.
private func decodeAudio(_ data: Data) {
    let path = write(data, suffix: "wav").path
    guard let file = try? AudioFile(path: path), let stream = try? FeatureStream(parameters: FeatureParameters(), inputRate: file.sampleRate, tracksPitch: true, detector: nil) else { return }
    var block: [Float] = []
    while true {
        block.removeAll(keepingCapacity: true)
        guard let n = try? file.read(maxFrames: 1 << 14, into: &block), n > 0 else { break }
        guard (try? stream.push(block[...])) != nil else { return }
        if stream.sampleCount > 16_000 * 10 { break }  // ten seconds exercise every path
    }
    try? stream.finish()
    _ = SpeechActivity().region(energies: stream.energies, sampleCount: stream.sampleCount)
    _ = stream.pitchStatistics(startFrame: 0, count: 149)
}

private let card: ModelCard? = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Models/emotion-cnn-sn.json")
    return try? ModelCard.load(from: root.standardized)
}()

private func loadProfile(_ data: Data) {
    guard let card else { return }
    _ = try? SpeakerProfile.load(path: write(data, suffix: "json").path, for: card)
}

#if FUZZING
// SwiftPM links an executable's entry point as `<module>_main`; hand control to libFuzzer's driver there.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32) -> Int32

@_cdecl("Fuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc, arguments = argv
    return runFuzzerDriver(&count, &arguments) { fuzzOneInput($0, $1) }
}
#else
/// Without libFuzzer: runs the inputs named on the command line once each (to replay a finding).
@main
struct Replay {
    static func main() throws {
        for path in CommandLine.arguments.dropFirst() {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            guard !data.isEmpty else { continue }
            _ = data.withUnsafeBytes { fuzzOneInput($0.bindMemory(to: UInt8.self).baseAddress!, data.count) }
            print("\(path): ok")
        }
    }
}
#endif

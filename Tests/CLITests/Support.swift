import Foundation
import XCTest

/// Runs the built `emotion-monitor` as a user would and captures what it prints.
struct Run {
    let status: Int32
    let stdout: String
    let stderr: String

    var lines: [String] { stdout.split(separator: "\n").map(String.init) }
}

enum CLI {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
    /// The few RAVDESS clips the repository carries (Tests/Clips/README.md), in RAVDESS's own layout.
    static let clips = root.appendingPathComponent("Tests/Clips")
    /// SwiftPM puts the test bundle and the executable in the same products folder.
    static let binary = Bundle.main.bundleURL.appendingPathComponent("emotion-monitor")

    /// Runs the program; a run longer than `timeout` seconds is killed and fails the test (a hang).
    /// With `shellCommand`, bash runs that instead, with $EM naming the program (for redirections).
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 300,
                    shellCommand: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws -> Run {
        let process = Process()
        process.executableURL = shellCommand == nil ? binary : URL(fileURLWithPath: "/bin/bash")
        process.arguments = shellCommand.map { ["-c", $0] } ?? arguments
        process.currentDirectoryURL = root
        process.environment = ProcessInfo.processInfo.environment.merging(environment.merging(["EM": binary.path]) { a, _ in a }) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read both pipes concurrently so a chatty child cannot block on a full pipe.
        // Each written by one reader, read only after group.wait().
        nonisolated(unsafe) var outData = Data(), errData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { outData = out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
        if group.wait(timeout: .now() + timeout) == .timedOut {
            process.terminate()
            group.wait()
            XCTFail("emotion-monitor \(shellCommand ?? arguments.joined(separator: " ")) hung for \(timeout) s", file: file, line: line)
        }
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                   stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Runs the program with stdout into `output` (stderr discarded) and returns its exit status and
    /// its own peak resident memory in MB, from wait4: getrusage's RUSAGE_CHILDREN would give the
    /// largest child this test process ever ran. A run longer than `timeout` seconds is killed.
    static func peakMemory(_ arguments: [String], stdout output: URL, timeout: Double = 600,
                           file: StaticString = #filePath, line: UInt = #line) throws -> (status: Int32, megabytes: Int) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // The shell only changes to the root (as `run` does) and execs: wait4 measures the program.
        let shell = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", root.path, binary.path] + arguments
        let argv = shell.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, shell[0], &actions, nil, argv, environ)
        guard spawned == 0 else { throw POSIXError(POSIXErrorCode(rawValue: spawned)!) }
        var status: Int32 = 0, usage = rusage()
        let deadline = Date().addingTimeInterval(timeout)
        while wait4(pid, &status, WNOHANG, &usage) == 0 {
            if Date() > deadline {
                kill(pid, SIGKILL)
                XCTFail("emotion-monitor \(arguments.joined(separator: " ")) hung for \(timeout) s", file: file, line: line)
            }
            usleep(50_000)
        }
        return ((status >> 8) & 0xff, Int(usage.ru_maxrss) / 1024)
    }

    /// The settings a run uses (`emotion-monitor config`: the defaults, with absolute paths), and
    /// their step between windows: one live event per hop.
    nonisolated(unsafe) static let config: [String: Any] = json(try! run(["config"], environment: ["EMOTION_MONITOR_CONFIG": ""]).stdout)
    static let hopSeconds = (config["windows"] as! [String: Any])["hopSeconds"] as! Double
    /// The default model's card.
    static var defaultCard: [String: Any] { json(try! String(contentsOf: URL(fileURLWithPath: config["model"] as! String), encoding: .utf8)) }

    /// Where the windows `listen` classifies over `seconds` of audio end: 3 s windows, one per hop.
    static func windowEnds(seconds: Double) -> [Double] {
        Array(stride(from: 3.0, through: seconds + 1e-9, by: hopSeconds))
    }

    /// One of the RAVDESS clips in Tests/Clips.
    static func clip(_ name: String) -> String {
        let actor = name.split(separator: "-").last!.prefix(2)
        return clips.appendingPathComponent("Actor_\(actor)/\(name).flac").path
    }

    /// 60 clips (about 3.5 minutes of speech) for a replay that must still be running when a test acts on it.
    static var longReplay: [String] {
        let all = FileManager.default.enumerator(atPath: clips.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix(".flac") }.sorted()
        return (0..<60).map { clips.appendingPathComponent(all[$0 % all.count]).path }
    }

    /// A whole corpus folder (`ravdess`, `tess`, ...) of the training data, which a clone does not
    /// carry: without it the test is skipped, saying so (CI has the corpora, so nothing skips there).
    static func corpus(_ name: String) throws -> URL {
        let folder = corpora.appendingPathComponent(name)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw XCTSkip("needs the \(name) corpus at \(folder.path) (set EMOTION_MONITOR_CORPORA to its parent folder)")
        }
        return folder
    }

    /// The corpora's folder: $EMOTION_MONITOR_CORPORA, or ../shared/data beside the checkout.
    static let corpora = ProcessInfo.processInfo.environment["EMOTION_MONITOR_CORPORA"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
        ?? root.appendingPathComponent("../shared/data").standardized

    /// The environment that defines an ALSA capture PCM `testcap` playing the raw file `raw` (then
    /// zeros forever), via ALSA_CONFIG_PATH: the real capture path without a sound card. Its null
    /// slave grants whatever is asked, so the raw file must be in the format the program asks for.
    static func filePCM(playing raw: URL, in dir: URL) throws -> [String: String] {
        let conf = dir.appendingPathComponent("asound.conf")
        try """
        pcm.testcap {
            type file
            slave.pcm { type null }
            file "/dev/null"
            infile "\(raw.path)"
            format "raw"
        }
        """.write(to: conf, atomically: true, encoding: .utf8)
        return ["ALSA_CONFIG_PATH": conf.path]
    }

    /// Runs sox (installed by setup.sh) to make a test input.
    static func sox(_ arguments: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sox")
        p.arguments = arguments
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "sox \(arguments)")
    }
}

/// A fresh folder per test, removed afterwards.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("emotion-monitor-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    return dir
}

/// The samples of a raw 32-bit float file (as `sox ... -t raw -e floating-point -b 32` writes it).
func readRawFloats(_ url: URL) throws -> [Float] {
    try Data(contentsOf: url).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
}

func writeFloatWav(_ url: URL, samples: [Float], rate: Int, channels: Int = 1) throws {
    var d = Data()
    func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { d.append(contentsOf: $0) } }
    func u16(_ v: Int) { withUnsafeBytes(of: UInt16(v).littleEndian) { d.append(contentsOf: $0) } }
    d.append(contentsOf: Array("RIFF".utf8)); u32(36 + samples.count * 4); d.append(contentsOf: Array("WAVEfmt ".utf8))
    u32(16); u16(3); u16(channels); u32(rate); u32(rate * channels * 4); u16(channels * 4); u16(32)
    d.append(contentsOf: Array("data".utf8)); u32(samples.count * 4)
    for s in samples { withUnsafeBytes(of: s.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
    try d.write(to: url)
}

func json(_ line: String, file: StaticString = #filePath, line l: UInt = #line) -> [String: Any] {
    guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
        XCTFail("not a JSON object: \(line)", file: file, line: l)
        return [:]
    }
    return object
}

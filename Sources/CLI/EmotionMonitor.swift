import ArgumentParser
import Foundation
import Logging
import Model
import Output
import Synchronization

@main
struct EmotionMonitor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emotion-monitor",
        abstract: "Speech-emotion monitor: which of eight emotions a voice carries, live or from recordings.",
        version: versionText(),
        subcommands: [Listen.self, Analyze.self, Calibrate.self, Evaluate.self, Devices.self, Bench.self, ShowConfiguration.self]
    )

    /// The program's own version, beside the model's (bumped with each release).
    static let version = "0.9.0"

    /// `--version`: the program and the default model (name and training date, from its card).
    private static func versionText() -> String {
        let model: String
        do {
            let (_, _, url, _) = try CommonOptions.parse([]).resolve()
            let card = try ModelCard.load(from: url)
            model = "model \(card.name)" + (card.date.map { ", trained \($0)" } ?? "") + " (\(url.path))"
        } catch {
            model = "no model (\(error))"
        }
        return "emotion-monitor \(version), \(model)"
    }

    static func main() async {
        occupyClosedStandardDescriptors()
        relaunchWithWiderBLASKernels()
        if CommandLine.arguments.dropFirst().first == "listen" { EarlySignals.record() }
        Logger.emotionMonitor(level: .info).debug("BLAS kernels: \(BLASKernels.description)")
        await main(nil)
    }
}

/// SIGHUP, SIGINT and SIGTERM that reach `listen` while it starts (loading the model and the
/// detector takes about 0.1 s), before its own handlers are installed: recorded here and acted on
/// once they are, instead of ending the process (SIGHUP's default would kill a kiosk at start-up).
/// Threading: the handler only sets bits; `take` from any thread.
enum EarlySignals {
    private static let arrived = Atomic<UInt64>(0)

    static func record() {
        for number in [SIGHUP, SIGINT, SIGTERM] {
            signal(number) { EarlySignals.arrived.bitwiseOr(1 << UInt64($0), ordering: .relaxed) }
        }
    }

    /// Whether `number` arrived early, forgetting it.
    static func take(_ number: Int32) -> Bool {
        arrived.bitwiseAnd(~(1 << UInt64(number)), ordering: .relaxed).oldValue & (1 << UInt64(number)) != 0
    }
}

/// Run with stdin, stdout or stderr closed (`>&-`), the next file opened (a log) would take that
/// number and get the output meant for it. /dev/null opened read-only holds the slot: reads see
/// nothing and writes fail, so a closed stdout is still reported as one that cannot be written.
private func occupyClosedStandardDescriptors() {
    for fd in Int32(0)...2 where fcntl(fd, F_GETFD) == -1 {
        let held = open("/dev/null", O_RDONLY)
        if held >= 0, held != fd { dup2(held, fd); close(held) }
    }
}

/// Re-executes this program with `OPENBLAS_CORETYPE` set when OpenBLAS loaded kernels narrower than
/// the CPU's vector units (see `BLASKernels`). A failed exec keeps the slower kernels: not an error.
private func relaunchWithWiderBLASKernels() {
    guard let environment = BLASKernels.relaunchEnvironment() else { return }
    for (name, value) in environment { setenv(name, value, 1) }
    execv("/proc/self/exe", CommandLine.unsafeArgv)
    for name in environment.keys { unsetenv(name) }
}

extension Logger {
    /// The program's logger on stderr; `EMOTION_MONITOR_LOG_LEVEL` (trace, debug, info, ...) overrides `level`.
    static func emotionMonitor(level: Logger.Level) -> Logger {
        var logger = Logger(label: "emotion-monitor")
        logger.logLevel = ProcessInfo.processInfo.environment["EMOTION_MONITOR_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? level
        return logger
    }
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

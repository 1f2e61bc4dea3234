import COpenBLAS
import Foundation

/// Which OpenBLAS kernels the CNN's sgemm runs on, and the best ones this CPU could run.
///
/// OpenBLAS picks its kernels once, when it loads, from a table of CPU models; a CPU newer than the
/// table (Debian's 0.3.21 on Emerald Rapids, measured) gets the SSE3 "Prescott" kernels at 15-19 % of
/// the core's peak. The vector units a CPU has are a better guide than its model number: this reads
/// them from the kernel's CPU flags. `OPENBLAS_CORETYPE` overrides OpenBLAS's choice, but only before
/// it loads, so the program re-executes itself once with it set (`relaunchEnvironment`).
/// Threading: stateless; safe from any thread.
public enum BLASKernels {
    /// The kernel family OpenBLAS loaded (`openblas_get_corename`), e.g. "Haswell", "SkylakeX".
    public static var loaded: String { String(cString: openblas_get_corename()) }

    /// Vector width the kernels of an OpenBLAS core use: 3 AVX-512, 2 AVX2 + FMA, 1 AVX, 0 SSE;
    /// nil for a name this table does not know (never second-guessed).
    static func level(ofCore core: String) -> Int? {
        switch core.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return 3
        case "haswell", "zen": return 2
        case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator": return 1
        case "prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai", "coppermine", "northwood",
             "banias", "opteron", "opteron_sse3", "barcelona", "bobcat", "nano", "generic": return 0
        default: return nil
        }
    }

    /// The OpenBLAS core whose sgemm uses the widest vector unit the CPU flags offer, with its level.
    static func best(forFlags flags: Set<Substring>) -> (core: String, level: Int)? {
        if ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains) { return ("SkylakeX", 3) }
        if flags.contains("avx2") && flags.contains("fma") { return ("Haswell", 2) }
        if flags.contains("avx") { return ("Sandybridge", 1) }
        return nil
    }

    /// The core to ask for instead of `loaded`, or nil when OpenBLAS's own choice is as wide as the CPU allows.
    public static func upgrade(loaded: String, cpuFlags: Set<Substring>) -> String? {
        guard let have = level(ofCore: loaded), let best = best(forFlags: cpuFlags), best.level > have else { return nil }
        return best.core
    }

    /// The first processor's flags from /proc/cpuinfo (empty if unreadable).
    public static func cpuFlags() -> Set<Substring> {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " "))
    }

    /// Why the loaded kernels are in use, for logs and `bench`: chosen by OpenBLAS, by the user's
    /// `OPENBLAS_CORETYPE`, or by this program on a CPU OpenBLAS did not know.
    public static var description: String {
        let environment = ProcessInfo.processInfo.environment
        if let original = environment[relaunchMarker] { return "OpenBLAS \(loaded), chosen from the CPU's flags (OpenBLAS chose \(original))" }
        if let asked = environment["OPENBLAS_CORETYPE"], !asked.isEmpty { return "OpenBLAS \(loaded), from OPENBLAS_CORETYPE=\(asked)" }
        return "OpenBLAS \(loaded), OpenBLAS's own choice"
    }

    /// Set in the re-executed process: the core OpenBLAS had chosen by itself.
    static let relaunchMarker = "EMOTION_MONITOR_OPENBLAS_CHOSE"

    /// The environment to re-execute this process with, when OpenBLAS loaded kernels narrower than
    /// the CPU's vector units and the user has not chosen a core; nil otherwise.
    /// Runs at every start: /proc/cpuinfo is read only when OpenBLAS chose narrower than AVX-512 kernels.
    public static func relaunchEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment,
                                           loaded: String = loaded, cpuFlags: @autoclosure () -> Set<Substring> = cpuFlags()) -> [String: String]? {
        guard environment["OPENBLAS_CORETYPE", default: ""].isEmpty, environment[relaunchMarker] == nil,
              let have = level(ofCore: loaded), have < 3, let core = upgrade(loaded: loaded, cpuFlags: cpuFlags()) else { return nil }
        return ["OPENBLAS_CORETYPE": core, relaunchMarker: loaded]
    }
}

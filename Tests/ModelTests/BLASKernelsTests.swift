import Model
import XCTest

final class BLASKernelsTests: XCTestCase {
    let avx512: Set<Substring> = ["sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"]
    let avx2: Set<Substring> = ["sse2", "avx", "avx2", "fma"]

    func testNarrowKernelsOnAWideCPUAreUpgradedFromItsFlags() {
        // Debian's OpenBLAS 0.3.21 on Emerald Rapids: Prescott.
        XCTAssertEqual(BLASKernels.upgrade(loaded: "Prescott", cpuFlags: avx512), "SkylakeX")
        XCTAssertEqual(BLASKernels.upgrade(loaded: "Prescott", cpuFlags: avx2), "Haswell")
        XCTAssertEqual(BLASKernels.upgrade(loaded: "Sandybridge", cpuFlags: avx2), "Haswell")
        XCTAssertEqual(BLASKernels.upgrade(loaded: "Haswell", cpuFlags: avx512), "SkylakeX")
    }

    func testOpenBLASsOwnGoodChoiceAndUnknownNamesAreKept() {
        for (core, flags) in [("Cooperlake", avx512), ("SkylakeX", avx512), ("SapphireRapids", avx512),
                              ("Haswell", avx2), ("Zen", avx2), ("SomeFutureCore", avx512)] {
            XCTAssertNil(BLASKernels.upgrade(loaded: core, cpuFlags: flags), core)
        }
        XCTAssertNil(BLASKernels.upgrade(loaded: "Prescott", cpuFlags: ["sse2", "sse3"]), "nothing wider to ask for")
    }

    func testRelaunchOnlyWhenNobodyChoseACore() {
        XCTAssertEqual(BLASKernels.relaunchEnvironment([:], loaded: "Prescott", cpuFlags: avx512),
                       ["OPENBLAS_CORETYPE": "SkylakeX", "EMOTION_MONITOR_OPENBLAS_CHOSE": "Prescott"])
        XCTAssertEqual(BLASKernels.relaunchEnvironment(["OPENBLAS_CORETYPE": ""], loaded: "Prescott", cpuFlags: avx2)?["OPENBLAS_CORETYPE"], "Haswell")
        XCTAssertNil(BLASKernels.relaunchEnvironment(["OPENBLAS_CORETYPE": "Prescott"], loaded: "Prescott", cpuFlags: avx512), "the user's choice")
        XCTAssertNil(BLASKernels.relaunchEnvironment(["EMOTION_MONITOR_OPENBLAS_CHOSE": "Prescott"], loaded: "Prescott", cpuFlags: avx512),
                     "relaunched once already")
        XCTAssertNil(BLASKernels.relaunchEnvironment([:], loaded: "Cooperlake", cpuFlags: avx512))
    }

    func testThisMachineReportsItsKernels() {
        XCTAssertFalse(BLASKernels.loaded.isEmpty)
        XCTAssertTrue(BLASKernels.description.hasPrefix("OpenBLAS \(BLASKernels.loaded)"), BLASKernels.description)
        XCTAssertTrue(BLASKernels.cpuFlags().contains("sse2"), "flags read from /proc/cpuinfo")
    }
}

// swift-tools-version:6.0
import PackageDescription

/// One system-library target per C dependency; the Swift modules above them each own one concern.
func system(_ name: String, _ pkgConfig: String, _ apt: String) -> Target {
    .systemLibrary(name: name, pkgConfig: pkgConfig, providers: [.apt([apt])])
}

let package = Package(
    name: "emotion-monitor",
    dependencies: [
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
    ],
    targets: [
        system("CALSA", "alsa", "libasound2-dev"),
        system("CFFTW", "fftw3f", "libfftw3-dev"),
        system("CSndFile", "sndfile", "libsndfile1-dev"),
        system("CSoxr", "soxr", "libsoxr-dev"),
        system("COpenBLAS", "openblas", "libopenblas-dev"),
        .target(name: "CALSAErrors", dependencies: ["CALSA"]),

        .target(name: "RingBuffer", dependencies: [.product(name: "Atomics", package: "swift-atomics")]),
        .target(name: "Capture", dependencies: [
            "CALSA", "CALSAErrors", "RingBuffer", .product(name: "Atomics", package: "swift-atomics"),
        ]),
        .testTarget(name: "CaptureTests", dependencies: ["Capture", "RingBuffer"]),
    ],
    swiftLanguageModes: [.v5]
)

import Features
import Foundation
import RingBuffer

/// Where live audio comes from: it writes mono Float samples at `sampleRate` into a SampleRing from
/// a thread of its own. Threading: every member may be used from any thread.
public protocol AudioSource: AnyObject {
    var sampleRate: Int { get }
    /// False once the source has ended and every sample it produced is in the ring.
    var isRunning: Bool { get }
    /// Why the source ended, if it ended on an error.
    var failureDescription: String? { get }
    /// The capture's health now: what the live sinks and the log report.
    var health: SourceHealth { get }
    /// What it is and what it delivers, for the diagnostics.
    var summary: String { get }
    func start()
    func stop()
    func waitUntilStopped()
}

/// A capture's counters and state at one moment. Threading: a value type, freely shared.
public struct SourceHealth: Equatable, Sendable {
    /// Times the device's own buffer overflowed (samples lost before the ring).
    public var overruns: Int
    /// Times a lost device was reopened.
    public var reopens: Int
    /// True while a lost device is being reopened.
    public var reconnecting: Bool

    public init(overruns: Int = 0, reopens: Int = 0, reconnecting: Bool = false) {
        (self.overruns, self.reopens, self.reconnecting) = (overruns, reopens, reconnecting)
    }
}

/// Recordings played into the ring back to back, as if they were a microphone: in real time (so
/// the live display can be seen without one) or as fast as the analyzer takes them. Unlike a
/// capture device it may wait for the consumer, so fast replay never drops samples.
/// Threading: every member may be used from any thread; reading happens on its own thread.
/// Unchecked Sendable: mutable flags live under `state` (an NSCondition); the ring is SPSC-safe.
public final class ReplaySource: AudioSource, @unchecked Sendable {
    public let sampleRate: Int
    /// Files never overrun nor get lost.
    public let health = SourceHealth()
    private let paths: [String]
    private let realTime: Bool
    private let state = NSCondition()
    private var running = false
    private var stopRequested = false
    private var failure: String?

    public var summary: String { "\(paths.count) recordings at \(sampleRate) Hz" + (realTime ? "" : ", fast") }

    /// Blocks of 20 ms: the period a capture device would deliver.
    private var blockFrames: Int { max(1, sampleRate / 50) }

    /// Checks every file up front, so a bad one is reported before anything plays; each is
    /// reopened in turn when its time comes (so thousands of files hold one descriptor at a time).
    public init(paths: [String], ringSeconds: Double, realTime: Bool) throws {
        precondition(!paths.isEmpty, "ReplaySource needs at least one file")
        let rate = try AudioFile(path: paths[0]).sampleRate
        for path in paths.dropFirst() {
            let other = try AudioFile(path: path).sampleRate
            if other != rate {
                throw AudioError.unreadable(path, reason: "replayed files must share one sample rate: \(other) Hz after \(rate) Hz")
            }
        }
        self.paths = paths
        sampleRate = rate
        ring = SampleRing(capacity: Int(ringSeconds * Double(sampleRate)))
        self.realTime = realTime
    }

    /// The ring the replay writes into (sized from the files' rate).
    public let ring: SampleRing

    public var isRunning: Bool { state.withLock { running } }
    public var failureDescription: String? { state.withLock { failure } }

    public func start() {
        state.withLock { running = true }
        let thread = Thread { [self] in
            run()
            state.withLock {
                running = false
                state.broadcast()
            }
        }
        thread.name = "emotion-monitor replay"
        thread.start()
    }

    public func stop() { state.withLock { stopRequested = true } }

    public func waitUntilStopped() {
        state.withLock { while running { state.wait() } }
    }

    private func run() {
        var block: [Float] = []
        let started = DispatchTime.now().uptimeNanoseconds
        var sent = 0
        var remaining = paths[...]
        var file: AudioFile?
        while !state.withLock({ stopRequested }) {
            block.removeAll(keepingCapacity: true)
            do {
                if file == nil {
                    guard let next = remaining.popFirst() else { return }
                    file = try AudioFile(path: next)
                    // Replaced since the check at start: it would play at the wrong speed.
                    if file!.sampleRate != sampleRate {
                        throw AudioError.unreadable(next, reason: "its sample rate changed to \(file!.sampleRate) Hz during the replay (\(sampleRate) Hz expected)")
                    }
                }
                guard try file!.read(maxFrames: blockFrames, into: &block) > 0 else {
                    file = nil
                    continue
                }
            } catch {
                state.withLock { failure = "\(error)" }
                return
            }
            if realTime {
                // Hand each block over when a microphone would have: at its end time.
                let due = started + UInt64((Double(sent + block.count) / Double(sampleRate)) * 1e9)
                let now = DispatchTime.now().uptimeNanoseconds
                if due > now { usleep(UInt32((due - now) / 1000)) }
            }
            var offset = 0
            while offset < block.count {
                let free = ring.capacity - ring.availableToRead
                let n = min(free, block.count - offset)
                if n > 0 {
                    block[offset..<(offset + n)].withUnsafeBufferPointer { _ = ring.write($0) }
                    offset += n
                } else if state.withLock({ stopRequested }) {
                    return
                } else {
                    usleep(2_000)  // the analyzer is behind: wait rather than drop
                }
            }
            sent += block.count
        }
    }
}

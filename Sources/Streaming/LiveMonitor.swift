import Dispatch
import Foundation
import RingBuffer

/// What the live pipeline feeds its samples to: the sliding window of `listen`, or calibration's
/// speaker-mean collector. Threading: owned by the monitor's queue.
public protocol LiveAnalysis: AnyObject, SendableMetatype {
    associatedtype Event: TimedEvent
    /// Samples at the source's rate; the events they complete.
    func push(_ samples: ArraySlice<Float>) throws -> [Event]
    /// The source has ended: the events the last samples complete.
    func finish() throws -> [Event]
}

/// An event that carries how long its analysis took (set by `LiveMonitor`).
public protocol TimedEvent {
    var analysisSeconds: Double { get set }
}

extension SlidingWindow: LiveAnalysis {}
extension LiveEvent: TimedEvent {}

/// The live pipeline's consumer half: a timer on a serial Dispatch queue drains the ring, feeds the
/// analysis and hands each event on; the source (capture thread or replay) fills the ring on its
/// own thread and never waits for this side.
/// Threading: `start` and `stop` from any thread; `onEvent` and `onEnd` run on `queue`.
/// Unchecked Sendable: mutable state (timer, buffer, counters, analysis) is touched on `queue` only.
public final class LiveMonitor<Analysis: LiveAnalysis>: @unchecked Sendable {
    public typealias Event = Analysis.Event
    public let source: AudioSource
    public let ring: SampleRing
    private let window: Analysis
    private let queue: DispatchQueue
    private let stopAfterSeconds: Double?
    private let onEvent: (Event) -> Void
    private let onEnd: (String?) -> Void
    private var timer: DispatchSourceTimer?
    private var buffer: [Float]
    private var ended = false
    private var pushed = 0
    private let recordLatencies: Bool
    /// Seconds each hop's analysis took, when recording (for the benchmark; off in long runs, where
    /// it would grow without bound). Queue-only state: read it after `onEnd`.
    public private(set) var hopLatencies: [Double] = []

    /// How often the ring is drained: a label appears at most this long after its hop's audio.
    public static var tick: DispatchTimeInterval { .milliseconds(40) }

    public init(source: AudioSource, ring: SampleRing, window: Analysis, queue: DispatchQueue,
                stopAfterSeconds: Double? = nil, recordLatencies: Bool = false, onEvent: @escaping (Event) -> Void, onEnd: @escaping (String?) -> Void) {
        self.source = source
        self.ring = ring
        self.window = window
        self.queue = queue
        self.stopAfterSeconds = stopAfterSeconds
        self.recordLatencies = recordLatencies
        self.onEvent = onEvent
        self.onEnd = onEnd
        buffer = [Float](repeating: 0, count: ring.capacity)
    }

    /// Samples the ring had to drop because the analyzer fell behind.
    public var droppedSamples: Int { ring.droppedSamples }

    public func start() {
        source.start()
        // `timer` is queue state: set it up on the queue, where `finish` may already be waiting to cancel it.
        queue.sync {
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.schedule(deadline: .now() + Self.tick, repeating: Self.tick, leeway: .milliseconds(5))
            timer.setEventHandler { [weak self] in self?.drain() }
            self.timer = timer
            timer.resume()
        }
    }

    /// Stops the source, analyses what it already captured, then calls `onEnd(nil)`.
    public func stop() {
        source.stop()
        queue.async { [self] in
            source.waitUntilStopped()
            drain()
        }
    }

    private func drain() {
        guard !ended else { return }
        let running = source.isRunning  // read before draining: once false, the ring holds everything
        // Only what is there now: a producer faster than the analyzer (fast replay) must not keep this
        // tick going forever, or signals and the health timer on the same queue would starve.
        var budget = ring.availableToRead
        do {
            while budget > 0 {
                let n = buffer.withUnsafeMutableBufferPointer { ring.read(into: UnsafeMutableBufferPointer(rebasing: $0[0..<min(budget, $0.count)])) }
                guard n > 0 else { break }
                budget -= n
                let take = min(n, samplesLeft)
                let t0 = DispatchTime.now().uptimeNanoseconds
                let events = try window.push(buffer[0..<take])
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                pushed += take
                for var e in events {
                    e.analysisSeconds = elapsed / Double(events.count)
                    if recordLatencies { hopLatencies.append(e.analysisSeconds) }
                    onEvent(e)
                }
                if samplesLeft == 0 { break }
            }
            if (!running && ring.availableToRead == 0) || samplesLeft == 0 {
                source.stop()
                for e in try window.finish() { onEvent(e) }
                return finish(running ? nil : source.failureDescription)
            }
        } catch {
            source.stop()
            finish("\(error)")
        }
    }

    /// Source samples still wanted before `stopAfterSeconds` is reached.
    private var samplesLeft: Int {
        guard let stopAfterSeconds else { return .max }
        return max(0, Int(stopAfterSeconds * Double(source.sampleRate)) - pushed)
    }

    private func finish(_ failure: String?) {
        ended = true
        timer?.cancel()
        timer = nil
        onEnd(failure)
    }
}

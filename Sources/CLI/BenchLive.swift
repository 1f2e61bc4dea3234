import Dispatch
import Foundation
import Model
import RingBuffer
import Streaming

/// `bench --live`: the live pipeline on a real-time replay, as `listen --replay` runs it.
struct LiveBenchmark {
    let config: Configuration
    let weights: ModelWeights

    /// Replays `paths` back to back in real time for at most `seconds` and prints CPU share, hop latency, the
    /// delay from a window's last sample reaching the ring to its event, and peak memory.
    func run(paths: [String], seconds: Double) throws {
        let source = try ReplaySource(paths: paths, ringSeconds: config.listen.ringSeconds, realTime: true)
        let ring = source.ring
        let window = try SlidingWindow(classifier: EmotionClassifier(weights: weights), windows: config.windows,
                                       speech: config.speech, smoothing: config.smoothing, inputRate: source.sampleRate)
        let queue = DispatchQueue(label: "bench.analyzer", qos: .userInteractive)
        let done = DispatchSemaphore(value: 0)
        var delays: [Double] = [], events = 0, voiced = 0
        var startedAt: UInt64 = 0
        let monitor = LiveMonitor(source: source, ring: ring, window: window, queue: queue, stopAfterSeconds: seconds,
                                  recordLatencies: true, onEvent: { e in
            events += 1
            if e.voice { voiced += 1 }
            // Replay hands each 20 ms block to the ring at its end time: the window's last block arrived then.
            let arrived = startedAt + UInt64(e.end * 1e9)
            let now = DispatchTime.now().uptimeNanoseconds
            if now > arrived { delays.append(Double(now - arrived) / 1e9) }
        }, onEnd: { _ in done.signal() })
        let cpu0 = cpuSeconds()
        startedAt = DispatchTime.now().uptimeNanoseconds
        monitor.start()
        done.wait()
        let wall = Double(DispatchTime.now().uptimeNanoseconds - startedAt) / 1e9
        let cpu = cpuSeconds() - cpu0
        let hops = monitor.hopLatencies.sorted()
        print("live replay     \(String(format: "%.1f", wall)) s of \(paths.count) files in real time, \(events) events (\(voiced) with voice), hop \(config.windows.hopSeconds) s")
        print(String(format: "CPU             %.2f %% of one core", 100 * cpu / wall))
        print(String(format: "hop latency     median %.2f ms, p99 %.2f ms (analysis of one hop)", 1000 * percentile(hops, 0.5), 1000 * percentile(hops, 0.99)))
        print(String(format: "audio to label  median %.1f ms, p99 %.1f ms after the window's last sample reached the ring",
                     1000 * percentile(delays.sorted(), 0.5), 1000 * percentile(delays.sorted(), 0.99)))
        print("speaker mean    \(window.normalisation): " + String(format: "%.1f µs per hop on average, %.2f %% of a hop's analysis",
                     1e6 * window.speakerMeanSeconds / Double(max(1, hops.count)), 100 * window.speakerMeanSeconds / max(1e-9, hops.reduce(0, +))))
        if config.speech.detector != nil {
            print("voice detector  " + String(format: "Silero VAD %.2f ms per hop on average, %.1f %% of a hop's analysis",
                         1e3 * window.voiceDetectorSeconds / Double(max(1, hops.count)), 100 * window.voiceDetectorSeconds / max(1e-9, hops.reduce(0, +))))
        } else {
            print("voice detector  none (energy gate alone)")
        }
        print("dropped         \(monitor.droppedSamples) samples")
        print("peak memory     \(peakResidentMegabytes()) MB resident")
        try finishOutput()
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? .nan : sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

/// User plus system CPU time of this process.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

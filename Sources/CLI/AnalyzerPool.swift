import ArgumentParser
import Dispatch
import Foundation
import Model
import Streaming

/// Runs `work` over `items` on all cores, one ClipAnalyzer per worker over shared weights, and
/// hands each result to `deliver` in input order as soon as its predecessors are done.
/// Threading: call from one thread; `deliver` runs serialised, on worker threads.
func forEachAnalyzed<T>(_ items: [String], weights: ModelWeights, config: Configuration, threads: Int,
                        work: @escaping (ClipAnalyzer, String) -> T, deliver: @escaping (Int, T) -> Void) {
    let lock = NSLock()
    var idle: [ClipAnalyzer] = []
    var pending: [Int: T] = [:]
    var next = 0
    let workers = max(1, min(threads, items.count))
    var claimed = 0
    DispatchQueue.concurrentPerform(iterations: workers) { _ in
        lock.lock()
        let analyzer = idle.popLast() ?? ClipAnalyzer(classifier: EmotionClassifier(weights: weights),
                                                      windows: config.windows, speech: config.speech)
        lock.unlock()
        while true {
            lock.lock()
            let index = claimed
            claimed += 1
            lock.unlock()
            guard index < items.count else { break }
            let result = work(analyzer, items[index])
            lock.lock()
            pending[index] = result
            while let ready = pending.removeValue(forKey: next) {
                deliver(next, ready)
                next += 1
            }
            lock.unlock()
        }
        lock.lock()
        idle.append(analyzer)
        lock.unlock()
    }
}

/// How many files to analyse at once, for the commands that take many.
struct ParallelOptions: ParsableArguments {
    @Option(help: "Files analysed in parallel (default: all cores).")
    var jobs: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
    }
}

import Dispatch
import Features
import Foundation
import Model

/// Runs `work` over `items` on all cores, one ClipAnalyzer per worker over shared weights, and
/// hands each result to `deliver` in input order as soon as its predecessors are done.
/// Threading: call from one thread; `work` runs concurrently (each call with its worker's own
/// analyzer), `deliver` runs serialised under the pool's lock, on worker threads.
public func forEachAnalyzed<T>(_ items: [String], weights: ModelWeights, windows: WindowSettings, speech: SpeechActivity,
                               threads: Int, work: @escaping (ClipAnalyzer, String) -> T, deliver: @escaping (Int, T) -> Void) {
    let state = PoolState<T>()
    // Unchecked: `work` only reads what its callers captured, and `deliver` runs under `state.lock`.
    nonisolated(unsafe) let work = work, deliver = deliver
    DispatchQueue.concurrentPerform(iterations: max(1, min(threads, items.count))) { _ in
        let analyzer = ClipAnalyzer(classifier: EmotionClassifier(weights: weights), windows: windows, speech: speech)
        while let index = state.claim(), index < items.count {
            let result = work(analyzer, items[index])
            state.lock.withLock {
                state.pending[index] = result
                while let ready = state.pending.removeValue(forKey: state.next) {
                    deliver(state.next, ready)
                    state.next += 1
                }
            }
        }
    }
}

/// The workers' shared bookkeeping. Unchecked Sendable: every field is used under `lock` only.
private final class PoolState<T>: @unchecked Sendable {
    let lock = NSLock()
    var pending: [Int: T] = [:]
    var next = 0
    private var claimed = 0

    /// The next item index to work on.
    func claim() -> Int? {
        lock.withLock {
            defer { claimed += 1 }
            return claimed
        }
    }
}

import Dispatch
import Features
import Foundation
import Model

/// Runs `work` over `items` on all cores, one ClipAnalyzer per worker over shared weights, and
/// hands each result to `deliver` in input order as soon as its predecessors are done. Workers claim
/// items in groups of up to `group` (fewer when that would leave a core idle), and `work` returns one
/// result per item of its group: `ClipAnalyzer.analyze(paths:)` runs a group's short clips through the
/// model in shared batches.
/// Threading: call from one thread; `work` runs concurrently (each call with its worker's own
/// analyzer), `deliver` runs serialised under the pool's lock, on worker threads.
public func forEachAnalyzed<T>(_ items: [String], weights: ModelWeights, windows: WindowSettings, speech: SpeechActivity,
                               threads: Int, group: Int = 1, work: @escaping (ClipAnalyzer, [String]) -> [T],
                               deliver: @escaping (Int, T) -> Void) {
    let workers = max(1, min(threads, items.count))
    let state = PoolState<T>(size: max(1, min(group, (items.count + workers - 1) / workers)))
    // Unchecked: `work` only reads what its callers captured, and `deliver` runs under `state.lock`.
    nonisolated(unsafe) let work = work, deliver = deliver
    DispatchQueue.concurrentPerform(iterations: workers) { _ in
        let analyzer = ClipAnalyzer(classifier: EmotionClassifier(weights: weights), windows: windows, speech: speech)
        while case let claimed = state.claim(below: items.count), !claimed.isEmpty {
            let results = work(analyzer, Array(items[claimed]))
            precondition(results.count == claimed.count, "one result per item")
            state.lock.withLock {
                for (index, result) in zip(claimed, results) { state.pending[index] = result }
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
    private let size: Int

    init(size: Int) { self.size = size }

    /// The next group of item indices to work on (empty once all `count` are claimed).
    func claim(below count: Int) -> Range<Int> {
        lock.withLock {
            let group = min(claimed, count)..<min(claimed + size, count)
            claimed = group.upperBound
            return group
        }
    }
}

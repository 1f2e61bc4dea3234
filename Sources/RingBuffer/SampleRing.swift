import Atomics

/// Lock-free single-producer single-consumer ring of `Float` samples, the hand-off between the
/// real-time capture thread and the analysis side.
///
/// Threading: one producer thread calls `write`, one consumer thread calls `read`; the counters are readable from any thread.
///
/// Both positions are monotonically increasing sample counts (a 64-bit count at 48 kHz does not wrap for
/// millions of years); the slot is the count masked by `capacity - 1`, which is why capacity is a power of two.
/// Each side owns one position: the producer publishes its position with release after copying samples in, and
/// the consumer loads it with acquire before copying them out (and symmetrically for freed space), so no lock
/// is needed and neither side ever waits for the other.
/// Unchecked Sendable: one producer and one consumer; positions are atomics ordering the storage accesses (above).
public final class SampleRing: @unchecked Sendable {
    /// Number of samples the ring holds: the requested capacity rounded up to a power of two.
    public let capacity: Int
    private let mask: Int
    private let storage: UnsafeMutablePointer<Float>
    /// Samples ever written; stored only by the producer.
    private let writePosition = ManagedAtomic<Int>(0)
    /// Samples ever read; stored only by the consumer.
    private let readPosition = ManagedAtomic<Int>(0)
    private let dropped = ManagedAtomic<Int>(0)

    /// Allocates the storage once, so that `write` and `read` never allocate.
    public init(capacity: Int) {
        precondition(capacity > 0, "SampleRing capacity must be positive")
        let rounded = capacity <= 1 ? 1 : 1 << (Int.bitWidth - (capacity - 1).leadingZeroBitCount)
        self.capacity = rounded
        mask = rounded - 1
        storage = .allocate(capacity: rounded)
        storage.initialize(repeating: 0, count: rounded)
    }

    deinit {
        storage.deallocate()
    }

    /// Samples waiting to be read. Exact (a lower bound) on the consumer thread, an upper bound on the
    /// producer thread, a snapshot elsewhere.
    public var availableToRead: Int {
        // Loading the read position first keeps the difference within 0...capacity on both owning threads;
        // the clamp covers a third thread that sees the two positions at different moments.
        let read = readPosition.load(ordering: .acquiring)
        let written = writePosition.load(ordering: .acquiring)
        return min(max(written - read, 0), capacity)
    }

    /// Samples offered to `write` that did not fit, in total since creation.
    public var droppedSamples: Int {
        dropped.load(ordering: .relaxed)
    }

    /// Copies in as many samples as fit and returns that count; the rest are counted in `droppedSamples`.
    /// Unread samples are never overwritten, so on overflow the newest samples are the ones dropped.
    /// Producer only. Never allocates, locks or blocks.
    @discardableResult
    public func write(_ samples: UnsafeBufferPointer<Float>) -> Int {
        let written = writePosition.load(ordering: .relaxed)
        // Acquire pairs with the consumer's release: the slots it freed are no longer being read.
        let read = readPosition.load(ordering: .acquiring)
        let count = min(capacity - (written - read), samples.count)
        if count > 0, let source = samples.baseAddress {
            let start = written & mask
            let firstPart = min(count, capacity - start)
            (storage + start).update(from: source, count: firstPart)
            storage.update(from: source + firstPart, count: count - firstPart)
            // Release publishes the copied samples before the new position becomes visible.
            writePosition.store(written + count, ordering: .releasing)
        }
        if count < samples.count {
            dropped.wrappingIncrement(by: samples.count - count, ordering: .relaxed)
        }
        return count
    }

    /// Copies up to `buffer.count` of the oldest unread samples into `buffer` and returns how many.
    /// Consumer only. Never allocates, locks or blocks.
    @discardableResult
    public func read(into buffer: UnsafeMutableBufferPointer<Float>) -> Int {
        let read = readPosition.load(ordering: .relaxed)
        // Acquire pairs with the producer's release: the samples up to `written` are fully copied in.
        let written = writePosition.load(ordering: .acquiring)
        let count = min(written - read, buffer.count)
        guard count > 0, let destination = buffer.baseAddress else { return 0 }
        let start = read & mask
        let firstPart = min(count, capacity - start)
        destination.update(from: storage + start, count: firstPart)
        (destination + firstPart).update(from: storage, count: count - firstPart)
        // Release keeps the copies above from being reordered after the slots are handed back to the producer.
        readPosition.store(read + count, ordering: .releasing)
        return count
    }
}

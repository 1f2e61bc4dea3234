import Foundation
import RingBuffer
import XCTest

final class SampleRingTests: XCTestCase {
    func testCapacityIsRoundedUpToAPowerOfTwo() {
        XCTAssertEqual(SampleRing(capacity: 1).capacity, 1)
        XCTAssertEqual(SampleRing(capacity: 3).capacity, 4)
        XCTAssertEqual(SampleRing(capacity: 1000).capacity, 1024)
        XCTAssertEqual(SampleRing(capacity: 1024).capacity, 1024)
    }

    func testWraparoundKeepsOrderAndContent() {
        let ring = SampleRing(capacity: 8)
        var next: Float = 0
        var expected: Float = 0
        // Chunk sizes that do not divide the capacity, so both copies split at the end of the storage.
        for chunk in [5, 3, 6, 7, 1, 8, 2] {
            let samples = (0..<chunk).map { _ -> Float in defer { next += 1 }; return next }
            XCTAssertEqual(samples.withUnsafeBufferPointer { ring.write($0) }, chunk)
            XCTAssertEqual(ring.availableToRead, chunk)
            var out = [Float](repeating: -1, count: 8)
            let count = out.withUnsafeMutableBufferPointer { ring.read(into: $0) }
            XCTAssertEqual(count, chunk)
            for value in out[..<count] {
                XCTAssertEqual(value, expected)
                expected += 1
            }
            XCTAssertEqual(ring.availableToRead, 0)
        }
        XCTAssertEqual(ring.droppedSamples, 0)
    }

    func testOverflowDropsTheNewestSamplesAndCountsThem() {
        let ring = SampleRing(capacity: 4)
        let first: [Float] = [1, 2, 3]
        let second: [Float] = [4, 5, 6]
        XCTAssertEqual(first.withUnsafeBufferPointer { ring.write($0) }, 3)
        XCTAssertEqual(second.withUnsafeBufferPointer { ring.write($0) }, 1)
        XCTAssertEqual(ring.droppedSamples, 2)
        var out = [Float](repeating: 0, count: 8)
        XCTAssertEqual(out.withUnsafeMutableBufferPointer { ring.read(into: $0) }, 4)
        XCTAssertEqual(Array(out[..<4]), [1, 2, 3, 4])
        // A read into an empty buffer and from an empty ring are both no-ops.
        XCTAssertEqual(out.withUnsafeMutableBufferPointer { ring.read(into: $0) }, 0)
    }

    /// The producer only offers what it knows fits (capacity minus what is unread), so nothing may be dropped
    /// and the consumer must see the exact counting sequence, however the two threads are scheduled.
    func testConcurrentTransferWithBackpressureIsExact() {
        let total = 1 << 20
        let ring = SampleRing(capacity: 4096)
        let producer = Thread {
            var chunk = [Float](repeating: 0, count: 700)
            var next = 0
            while next < total {
                let count = min(chunk.count, ring.capacity - ring.availableToRead, total - next)
                if count == 0 { sched_yield(); continue }
                for index in 0..<count { chunk[index] = Float(next + index) }
                let written = chunk.withUnsafeBufferPointer { ring.write(UnsafeBufferPointer(rebasing: $0[..<count])) }
                precondition(written == count, "the ring refused samples it had room for")
                next += count
            }
        }
        producer.start()

        var out = [Float](repeating: 0, count: 333)
        var expected = 0
        var mismatches = 0
        while expected < total {
            let count = out.withUnsafeMutableBufferPointer { ring.read(into: $0) }
            if count == 0 { sched_yield(); continue }
            for index in 0..<count where out[index] != Float(expected + index) { mismatches += 1 }
            expected += count
        }
        XCTAssertEqual(mismatches, 0)
        XCTAssertEqual(ring.droppedSamples, 0)
    }

    /// Without backpressure the producer overruns the consumer at times. Whatever the interleaving, every sample
    /// offered is either read or counted as dropped, and what is read is in order and uncorrupted: each read
    /// sample is a value that was offered, later than the one before it.
    func testConcurrentTransferWithDropsLosesNothingSilently() {
        let total = 1 << 20
        let ring = SampleRing(capacity: 1024)
        let finished = DispatchGroup()
        let acceptedByRing = TestCounter()
        finished.enter()
        let producer = Thread {
            var chunk = [Float](repeating: 0, count: 300)
            var next = 0
            while next < total {
                let count = min(chunk.count, total - next)
                for index in 0..<count { chunk[index] = Float(next + index) }
                acceptedByRing.value += chunk.withUnsafeBufferPointer { ring.write(UnsafeBufferPointer(rebasing: $0[..<count])) }
                next += count
            }
            finished.leave()
        }
        producer.start()

        var out = [Float](repeating: 0, count: 256)
        var readCount = 0
        var previous: Float = -1
        var outOfOrder = 0
        var producerDone = false
        while !producerDone {
            // Observe completion before draining, so the final drain sees every sample the producer wrote.
            producerDone = finished.wait(timeout: .now()) == .success
            while true {
                let count = out.withUnsafeMutableBufferPointer { ring.read(into: $0) }
                if count == 0 { break }
                for value in out[..<count] {
                    if value <= previous || value >= Float(total) || value != value.rounded() { outOfOrder += 1 }
                    previous = value
                }
                readCount += count
            }
        }
        XCTAssertEqual(outOfOrder, 0)
        XCTAssertEqual(readCount, acceptedByRing.value)
        XCTAssertEqual(readCount + ring.droppedSamples, total)
    }

    /// A consumer that never reads: the ring fills once, everything after is counted, and the content is the
    /// exact prefix of what was offered.
    func testStalledConsumerGetsTheExactPrefix() {
        let ring = SampleRing(capacity: 1000)
        let samples = (0..<5000).map(Float.init)
        var accepted = 0
        for start in stride(from: 0, to: samples.count, by: 320) {
            let end = min(start + 320, samples.count)
            accepted += samples.withUnsafeBufferPointer { ring.write(UnsafeBufferPointer(rebasing: $0[start..<end])) }
        }
        XCTAssertEqual(accepted, ring.capacity)
        XCTAssertEqual(accepted + ring.droppedSamples, samples.count)
        var out = [Float](repeating: -1, count: 5000)
        let count = out.withUnsafeMutableBufferPointer { ring.read(into: $0) }
        XCTAssertEqual(Array(out[..<count]), Array(samples[..<ring.capacity]))
    }
}

/// A count handed from a test's worker thread to the test body; the hand-off is synchronised by the test.
final class TestCounter: @unchecked Sendable {
    var value = 0
}

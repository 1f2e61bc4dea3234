import CALSA
@testable import Capture
import Foundation
import RingBuffer
import XCTest

final class CaptureThreadTests: XCTestCase {
    /// Opens the file PCM holding `samples` as 16 kHz S16 with `channels` channels.
    private func s16Device(_ pcm: FilePCM, channels: Int? = nil) throws -> CaptureDevice {
        try CaptureDevice(
            name: pcm.name, configText: pcm.configText,
            preferredSampleRate: 16000, sampleFormats: [.s16], channels: channels)
    }

    /// Runs a thread to its frame limit and returns it with everything the ring holds afterwards.
    private func runToLimit(_ device: CaptureDevice, ring: SampleRing, frameLimit: Int) -> (CaptureThread, [Float]) {
        let thread = CaptureThread(device: device, ring: ring, frameLimit: frameLimit)
        thread.start()
        thread.waitUntilStopped()
        var samples = [Float](repeating: .nan, count: ring.availableToRead)
        let count = samples.withUnsafeMutableBufferPointer { ring.read(into: $0) }
        return (thread, Array(samples[..<count]))
    }

    func testS16MonoArrivesBitForBit() throws {
        let pattern = s16Pattern(frames: 16000)
        let ring = SampleRing(capacity: pattern.count)
        let (thread, samples) = runToLimit(try s16Device(FilePCM(pattern)), ring: ring, frameLimit: pattern.count)

        XCTAssertNil(thread.failure)
        XCTAssertFalse(thread.isRunning)
        XCTAssertEqual(thread.format, CaptureFormat(sampleRate: 16000, channels: 1, sampleFormat: .s16))
        XCTAssertEqual(thread.framesCaptured, pattern.count)
        XCTAssertEqual(thread.overruns, 0)
        XCTAssertEqual(ring.droppedSamples, 0)
        XCTAssertEqual(samples, pattern.map { Float($0) / 32768 })
    }

    func testStalledConsumerGetsCountedDropsAndTheExactPrefix() throws {
        let pattern = s16Pattern(frames: 16000)
        let ring = SampleRing(capacity: 1024)
        let (thread, samples) = runToLimit(try s16Device(FilePCM(pattern)), ring: ring, frameLimit: pattern.count)

        XCTAssertEqual(thread.framesCaptured, pattern.count)
        XCTAssertEqual(ring.droppedSamples, pattern.count - ring.capacity)
        XCTAssertEqual(samples, pattern[..<ring.capacity].map { Float($0) / 32768 })
    }

    func testStereoIsAveragedToMono() throws {
        let left = s16Pattern(frames: 8000)
        let right = left.reversed().map { $0 / 3 }
        let device = try s16Device(FilePCM(zip(left, right).flatMap { [$0, $1] }), channels: 2)
        XCTAssertEqual(device.format.channels, 2)
        let (_, samples) = runToLimit(device, ring: SampleRing(capacity: left.count), frameLimit: left.count)

        // (l + r) / 2 / 32768 is exact in Float for 16-bit inputs.
        XCTAssertEqual(samples, zip(left, right).map { Float(Int($0) + Int($1)) / 65536 })
    }

    func testFloatPassesThroughUnchanged() throws {
        let pattern = (0..<4000).map { Float(sin(Double($0) * 0.01)) * 0.9 }
        let pcm = try FilePCM(pattern)
        let device = try CaptureDevice(name: pcm.name, configText: pcm.configText)
        XCTAssertEqual(device.format.sampleFormat, .float)
        let (_, samples) = runToLimit(device, ring: SampleRing(capacity: pattern.count), frameLimit: pattern.count)
        XCTAssertEqual(samples, pattern)
    }

    func testS32IsScaledByTwoToTheThirtyOne() throws {
        let pattern: [Int32] = (0..<3000).map { Int32(truncatingIfNeeded: $0 &* 1_431_655_765) }
        let pcm = try FilePCM(pattern)
        let device = try CaptureDevice(
            name: pcm.name, configText: pcm.configText, preferredSampleRate: 44100, sampleFormats: [.s32])
        XCTAssertEqual(device.format, CaptureFormat(sampleRate: 44100, channels: 1, sampleFormat: .s32))
        let (_, samples) = runToLimit(device, ring: SampleRing(capacity: pattern.count), frameLimit: pattern.count)
        XCTAssertEqual(samples, pattern.map { Float($0) / 2_147_483_648 })
    }

    func testStopEndsAnUnlimitedThreadAndOnDataIsCalled() throws {
        let device = try s16Device(FilePCM(s16Pattern(frames: 1600)))
        let ring = SampleRing(capacity: 4096)
        let delivered = DispatchSemaphore(value: 0)
        let thread = CaptureThread(device: device, ring: ring, onData: { delivered.signal() })
        thread.waitUntilStopped()  // returns at once before start
        thread.start()
        XCTAssertTrue(thread.isRunning)
        delivered.wait()
        thread.stop()
        thread.waitUntilStopped()

        XCTAssertFalse(thread.isRunning)
        XCTAssertNil(thread.failure)
        XCTAssertGreaterThan(thread.framesCaptured, 0)
        XCTAssertEqual(ring.availableToRead + ring.droppedSamples, thread.framesCaptured)
    }

    // Device loss is simulated by dropping the PCM before the thread starts: a read in the SETUP state fails
    // with -EBADFD, one of the codes a vanished device produces.

    func testLostDeviceEndsTheThreadWithAFailure() throws {
        let pcm = try FilePCM([Int16](repeating: 1, count: 3))
        let device = try s16Device(pcm)
        XCTAssertEqual(snd_pcm_drop(device.handle), 0)
        let thread = CaptureThread(device: device, ring: SampleRing(capacity: 16), frameLimit: 3)
        XCTAssertNil(thread.failure)
        thread.start()
        thread.waitUntilStopped()

        XCTAssertFalse(thread.isRunning)
        XCTAssertEqual(thread.framesCaptured, 0)
        XCTAssertEqual(thread.failure, .deviceLost(device: "testcap", reason: "File descriptor in bad state"))
        XCTAssertEqual(thread.failure?.description, "capture device 'testcap' was lost: File descriptor in bad state")
    }

    func testKioskModeReopensALostDeviceAndCarriesOn() throws {
        let pattern = s16Pattern(frames: 1000)
        // Kept alive to the end: reopening reads the file again.
        let pcm = try FilePCM(pattern)
        let device = try s16Device(pcm)
        XCTAssertEqual(snd_pcm_drop(device.handle), 0)
        let ring = SampleRing(capacity: pattern.count)
        let thread = CaptureThread(device: device, ring: ring, frameLimit: pattern.count, reopen: true)
        thread.start()
        // Kiosk mode retries forever; should reopening never succeed, stop it so the test fails instead of hanging.
        DispatchQueue.global().asyncAfter(deadline: .now() + 60) { thread.stop() }
        thread.waitUntilStopped()
        var samples = [Float](repeating: .nan, count: pattern.count)
        XCTAssertEqual(samples.withUnsafeMutableBufferPointer { ring.read(into: $0) }, pattern.count)
        withExtendedLifetime(pcm) {}

        XCTAssertNil(thread.failure)
        XCTAssertEqual(thread.reopens, 1)
        XCTAssertFalse(thread.isReconnecting)
        // The reopened file PCM starts from the beginning of its file again.
        XCTAssertEqual(samples, pattern.map { Float($0) / 32768 })
    }

    func testReconnectDelaysDoubleFromHalfASecondUpToThirtySeconds() {
        var backoff = ReconnectBackoff()
        XCTAssertEqual((0..<9).map { _ in backoff.next() }, [0.5, 1, 2, 4, 8, 16, 30, 30, 30])
    }

    func testReadErrorsAreClassified() {
        for code in [ENODEV, EBADFD, ENXIO] {
            guard case .deviceLost(device: "mic", _) = CaptureError.fromRead(device: "mic", code: -Int(code)) else {
                return XCTFail("errno \(code) should mean the device was lost")
            }
        }
        XCTAssertEqual(
            CaptureError.fromRead(device: "mic", code: -Int(EIO)),
            .readFailed(device: "mic", reason: "Input/output error"))
    }
}

import Atomics
import CALSA
import Dispatch
import Foundation
import RingBuffer

/// Reads a `CaptureDevice` on a dedicated thread, folds each period to mono `Float` and writes it into a
/// `SampleRing`. The loop never allocates, takes a lock or waits for the consumer, so a slow consumer costs
/// counted ring drops rather than device overruns.
///
/// Threading: `start`, `stop`, `waitUntilStopped` and every property may be used from any thread; `onData` runs on the capture thread.
/// Unchecked Sendable: shared state is atomics; the device and buffers belong to the capture thread, failureValue is published by `failed` (release/acquire).
public final class CaptureThread: @unchecked Sendable {
    /// The format negotiated when the device was opened. The rate stays the same for the thread's lifetime
    /// (a reopened device must match it), so the consumer can set up its resampler once.
    public let format: CaptureFormat
    /// The ALSA name the device was opened with; kiosk mode reopens it by this name.
    public let deviceName: String
    /// Device frames after which the thread stops by itself, or nil to run until `stop()`.
    public let frameLimit: Int?
    /// Kiosk mode: a lost device is reopened (with backoff) instead of ending the thread.
    public let reopensLostDevice: Bool

    private let ring: SampleRing
    private let onData: (() -> Void)?

    // Capture-thread state: touched only by the thread once started (and by init/deinit, which cannot overlap it).
    private var device: CaptureDevice
    private var readBuffer: UnsafeMutableRawPointer
    private var readBufferBytes: Int
    private var monoBuffer: UnsafeMutablePointer<Float>
    private var monoCapacity: Int

    private let started = ManagedAtomic<Bool>(false)
    private let running = ManagedAtomic<Bool>(false)
    private let stopRequested = ManagedAtomic<Bool>(false)
    private let capturedFrames = ManagedAtomic<Int>(0)
    private let overrunCount = ManagedAtomic<Int>(0)
    private let reopenCount = ManagedAtomic<Int>(0)
    private let reconnecting = ManagedAtomic<Bool>(false)
    /// Set once, with release, after `failureValue` is written; readers load it with acquire before reading the value.
    private let failed = ManagedAtomic<Bool>(false)
    private var failureValue: CaptureError?
    /// Entered by `start()`, left when the thread exits: the join that Foundation's `Thread` lacks.
    private let exited = DispatchGroup()

    /// Prepares capture from `device` into `ring`; nothing is read until `start()`.
    ///
    /// The thread becomes the ring's one producer; the caller reads it. It also takes the device over: the caller must not read from or close it afterwards, and the thread
    /// closes it when it ends.
    ///
    /// - Parameters:
    ///   - frameLimit: stop after this many device frames (a test PCM, for one, delivers data forever).
    ///   - reopen: kiosk mode; on device loss, close it and reopen it by name, waiting 0.5 s and doubling up
    ///     to 30 s between attempts, until it is back or `stop()` is called.
    ///   - onData: called on the capture thread after each period is written to the ring, to wake the
    ///     consumer; it must not block or allocate.
    public init(
        device: CaptureDevice,
        ring: SampleRing,
        frameLimit: Int? = nil,
        reopen: Bool = false,
        onData: (() -> Void)? = nil
    ) {
        precondition(device.handle != nil, "CaptureThread needs an open CaptureDevice")
        precondition(frameLimit.map { $0 >= 0 } ?? true, "frameLimit must not be negative")
        self.device = device
        self.ring = ring
        self.frameLimit = frameLimit
        self.onData = onData
        reopensLostDevice = reopen
        format = device.format
        deviceName = device.name
        readBufferBytes = device.periodFrames * device.format.bytesPerFrame
        readBuffer = .allocate(byteCount: readBufferBytes, alignment: 16)
        monoCapacity = device.periodFrames
        monoBuffer = .allocate(capacity: monoCapacity)
    }

    deinit {
        readBuffer.deallocate()
        monoBuffer.deallocate()
    }

    /// True from `start()` until the thread has exited; once false, every sample it captured is in the ring.
    public var isRunning: Bool { running.load(ordering: .acquiring) }
    /// Device frames read so far, including any the ring had to drop.
    public var framesCaptured: Int { capturedFrames.load(ordering: .relaxed) }
    /// Device overruns (the thread fell a whole buffer behind the device), each recovered from.
    public var overruns: Int { overrunCount.load(ordering: .relaxed) }
    /// Times a lost device was successfully reopened (kiosk mode only).
    public var reopens: Int { reopenCount.load(ordering: .relaxed) }
    /// True while a lost device is being reopened (kiosk mode only).
    public var isReconnecting: Bool { reconnecting.load(ordering: .relaxed) }
    /// Why the thread ended, if it ended on an error; nil while running and after a normal stop.
    public var failure: CaptureError? {
        failed.load(ordering: .acquiring) ? failureValue : nil
    }

    /// Starts the capture thread; call once.
    public func start() {
        precondition(!started.exchange(true, ordering: .relaxed), "CaptureThread.start() called twice")
        running.store(true, ordering: .relaxed)
        exited.enter()
        // The block keeps `self` alive until the loop returns; the thread object is not stored, so no cycle.
        let thread = Thread { [self] in run() }
        thread.name = "audio-capture"  // Linux keeps at most 15 characters
        thread.qualityOfService = .userInteractive
        thread.start()
    }

    /// Asks the thread to stop; it exits after the read in progress, within about one period.
    public func stop() {
        stopRequested.store(true, ordering: .relaxed)
    }

    /// Blocks until the thread has exited (returns at once if it was never started).
    public func waitUntilStopped() {
        exited.wait()
    }

    private func run() {
        var remaining = frameLimit ?? .max
        while remaining > 0 && !stopRequested.load(ordering: .relaxed) {
            guard let pcm = device.handle else { break }
            // Wait in slices, so that stop() is honoured even when a device stalls without an error.
            if snd_pcm_wait(pcm, 200) == 0 { continue }
            let result = Int(snd_pcm_readi(pcm, readBuffer, snd_pcm_uframes_t(min(device.periodFrames, remaining))))
            if result > 0 {
                deliver(frames: result)
                remaining -= result
                continue
            }
            var errorCode = result
            switch -result {
            case 0, Int(EINTR):
                continue
            case Int(EAGAIN):
                // Not expected in blocking mode; wait for data rather than spin if a plugin reports it anyway.
                _ = snd_pcm_wait(pcm, 1000)
                continue
            case Int(EPIPE), Int(ESTRPIPE):
                if -result == Int(EPIPE) { overrunCount.wrappingIncrement(ordering: .relaxed) }
                let recovered = Int(snd_pcm_recover(pcm, Int32(result), 1))
                if recovered >= 0 { continue }
                errorCode = recovered
            default:
                break
            }
            if reopensLostDevice {
                if reconnect() { continue }
            } else {
                // Leaving the loop, so building the message (which allocates) is fine here.
                failureValue = CaptureError.fromRead(device: deviceName, code: errorCode)
                failed.store(true, ordering: .releasing)
            }
            break
        }
        device.close()
        running.store(false, ordering: .releasing)
        exited.leave()
    }

    private func deliver(frames: Int) {
        let current = device.format
        // One multiply per frame both averages the channels and scales integers to -1..<1. For S16 mono and
        // stereo the factor is a power of two, so the result is exact.
        let scale = 1 / (current.sampleFormat.fullScale * Float(current.channels))
        switch current.sampleFormat {
        case .s16: mixDown(Int16.self, frames: frames, channels: current.channels, scale: scale) { Float($0) }
        case .s32: mixDown(Int32.self, frames: frames, channels: current.channels, scale: scale) { Float($0) }
        // NaN or infinity from a float device becomes silence, as in decoded files: one bad sample
        // would otherwise make every feature of the window NaN.
        case .float: mixDown(Float.self, frames: frames, channels: current.channels, scale: scale) { $0.isFinite ? $0 : 0 }
        }
        ring.write(UnsafeBufferPointer(start: monoBuffer, count: frames))
        capturedFrames.wrappingIncrement(by: frames, ordering: .relaxed)
        onData?()
    }

    @inline(__always)
    private func mixDown<Sample>(
        _: Sample.Type, frames: Int, channels: Int, scale: Float, toFloat: (Sample) -> Float
    ) {
        let source = UnsafeRawPointer(readBuffer)
        let stride = MemoryLayout<Sample>.stride
        for frame in 0..<frames {
            var sum: Float = 0
            for channel in 0..<channels {
                sum += toFloat(source.load(fromByteOffset: (frame * channels + channel) * stride, as: Sample.self))
            }
            monoBuffer[frame] = sum * scale
        }
    }

    /// Kiosk mode: closes the lost device and reopens it by name with exponential backoff until it is back
    /// (true) or `stop()` is called (false). This is the one place the capture thread allocates: a new device,
    /// and larger buffers if its period or frame size grew.
    private func reconnect() -> Bool {
        reconnecting.store(true, ordering: .relaxed)
        defer { reconnecting.store(false, ordering: .relaxed) }
        device.close()
        var backoff = ReconnectBackoff()
        while sleepUnlessStopped(seconds: backoff.next()) {
            guard let fresh = try? device.reopened() else { continue }
            // Another rate would silently detune everything downstream, so such a device is not accepted.
            guard fresh.format.sampleRate == format.sampleRate else {
                fresh.close()
                continue
            }
            adopt(fresh)
            reopenCount.wrappingIncrement(ordering: .relaxed)
            return true
        }
        return false
    }

    private func adopt(_ fresh: CaptureDevice) {
        device = fresh
        let bytes = fresh.periodFrames * fresh.format.bytesPerFrame
        if bytes > readBufferBytes {
            readBuffer.deallocate()
            readBuffer = .allocate(byteCount: bytes, alignment: 16)
            readBufferBytes = bytes
        }
        if fresh.periodFrames > monoCapacity {
            monoBuffer.deallocate()
            monoBuffer = .allocate(capacity: fresh.periodFrames)
            monoCapacity = fresh.periodFrames
        }
    }

    /// Sleeps in short slices so that `stop()` is honoured promptly; false if a stop was requested.
    private func sleepUnlessStopped(seconds: Double) -> Bool {
        let slice = 0.02
        var left = seconds
        while left > 0 {
            if stopRequested.load(ordering: .relaxed) { return false }
            usleep(UInt32(min(left, slice) * 1_000_000))
            left -= slice
        }
        return !stopRequested.load(ordering: .relaxed)
    }
}

/// Delays between attempts to reopen a lost device: 0.5 s, doubling up to 30 s, so that a device that is
/// gone for good costs almost nothing while one that is replugged comes back quickly.
struct ReconnectBackoff {
    static let initialDelay = 0.5
    static let maximumDelay = 30.0
    private var delay = initialDelay

    mutating func next() -> Double {
        defer { delay = min(delay * 2, Self.maximumDelay) }
        return delay
    }
}

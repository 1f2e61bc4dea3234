import Capture
import XCTest

final class CaptureDeviceTests: XCTestCase {
    func testRequestedS16MonoIsNegotiatedWithTwentyMillisecondPeriods() throws {
        let pcm = try FilePCM(s16Pattern(frames: 10))
        let device = try CaptureDevice(
            name: pcm.name, configText: pcm.configText, preferredSampleRate: 16000, sampleFormats: [.s16])
        XCTAssertEqual(device.name, "testcap")
        XCTAssertEqual(device.format, CaptureFormat(sampleRate: 16000, channels: 1, sampleFormat: .s16))
        XCTAssertEqual(device.periodFrames, 320)
        XCTAssertGreaterThanOrEqual(device.bufferFrames, 4 * device.periodFrames)
    }

    func testDefaultsPreferFloatMonoAtFortyEightKilohertz() throws {
        // The null slave accepts every format, channel count and rate, so the preferences decide.
        let pcm = try FilePCM([Float](repeating: 0, count: 10))
        let device = try CaptureDevice(name: pcm.name, configText: pcm.configText)
        XCTAssertEqual(device.format, CaptureFormat(sampleRate: 48000, channels: 1, sampleFormat: .float))
        XCTAssertEqual(device.periodFrames, 960)
    }

    func testUnknownDeviceNamesItAndPointsToTheDeviceList() {
        XCTAssertThrowsError(try CaptureDevice(name: "no-such-capture-device")) { error in
            XCTAssertEqual(
                (error as? CaptureError)?.description,
                "cannot open capture device 'no-such-capture-device': No such file or directory"
                    + " (list devices with 'emotion-monitor devices')")
        }
    }

    func testUnknownNameInConfigTextIsReportedTheSameWay() throws {
        let pcm = try FilePCM(s16Pattern(frames: 10))
        XCTAssertThrowsError(try CaptureDevice(name: "elsewhere", configText: pcm.configText)) { error in
            XCTAssertEqual(error as? CaptureError, .cannotOpen(device: "elsewhere", reason: "No such file or directory"))
        }
    }

    func testMalformedConfigTextIsRejected() {
        XCTAssertThrowsError(try CaptureDevice(name: "broken", configText: "pcm.broken { type")) { error in
            guard case .invalidConfiguration? = error as? CaptureError else {
                return XCTFail("expected invalidConfiguration, got \(error)")
            }
        }
    }

    func testUnsupportedChannelCountIsReported() throws {
        let pcm = try FilePCM(s16Pattern(frames: 10))
        XCTAssertThrowsError(try CaptureDevice(name: pcm.name, configText: pcm.configText, channels: 0)) { error in
            guard case let .unsupportedFormat(device, _)? = error as? CaptureError else {
                return XCTFail("expected unsupportedFormat, got \(error)")
            }
            XCTAssertEqual(device, "testcap")
        }
    }

    func testListingDevicesWorksWithoutASoundCard() {
        let devices = CaptureDevice.listCaptureDevices()
        XCTAssertFalse(devices.contains { $0.name.isEmpty })
        XCTAssertEqual(devices.filter(\.isDefault).map(\.name), devices.contains { $0.name == "default" } ? ["default"] : [])
        if devices.contains(where: \.isDefault) {
            XCTAssertTrue(devices[0].isDefault, "the default device is listed first")
        }
    }
}

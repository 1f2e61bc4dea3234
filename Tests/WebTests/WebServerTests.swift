import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Model
import Streaming
@testable import Web
import XCTest

/// The server in-process, where the capture's state can be set directly.
final class WebServerTests: XCTestCase {
    func get(_ url: String) throws -> Int {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var status = 0
        URLSession.shared.dataTask(with: URL(string: url)!) { _, response, _ in
            status = (response as? HTTPURLResponse)?.statusCode ?? 0
            done.signal()
        }.resume()
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        return status
    }

    func testHealthzFollowsTheCaptureAndTheServerStops() throws {
        let card = try ModelCard.load(from: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Models/emotion-cnn.json").standardized)
        let server = WebServer(settings: try .init(address: "127.0.0.1:0", token: nil, uploadLimitBytes: 1_000_000),
                               monitor: .init(card: card, analyze: { _ in throw WebError("not here") }), logger: Logger(label: "test"))
        let url = "http://" + (try server.start()) + "/"
        XCTAssertEqual(try get(url + "healthz"), 200)
        server.capture(running: false)  // device lost
        XCTAssertEqual(try get(url + "healthz"), 503)
        server.capture(running: true)   // reopened
        XCTAssertEqual(try get(url + "healthz"), 200)
        server.stop()
        XCTAssertEqual(try get(url + "healthz"), 0, "nothing listens after stop")
    }

    func testMultipartFileFieldIsFound() {
        let body = Data("--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF1234\r\n--XyZ--\r\n".utf8)
        XCTAssertEqual(multipartFile(body, contentType: "multipart/form-data; boundary=XyZ"), Data("RIFF1234".utf8))
        XCTAssertNil(multipartFile(body, contentType: "multipart/form-data; boundary=Other"))
        XCTAssertNil(multipartFile(Data("--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nx\r\n--XyZ--".utf8),
                                   contentType: "multipart/form-data; boundary=XyZ"))
    }
}

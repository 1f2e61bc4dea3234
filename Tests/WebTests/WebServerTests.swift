import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Model
import ServiceLifecycle
import Streaming
@testable import Web
import XCTest

/// The server in-process, where the capture's state can be set directly.
final class WebServerTests: XCTestCase {
    func get(_ url: String) throws -> Int { try Self.request(url).status }

    /// The status and the headers of `method` on `url`; status 0 when nothing answered.
    /// Static: the upload test calls it from other threads.
    static func request(_ url: String, method: String = "GET", headers: [String: String] = [:], body: Data? = nil) throws
        -> (status: Int, headers: [AnyHashable: Any]) {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var answer: (Int, [AnyHashable: Any]) = (0, [:])
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.httpBody = body
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        URLSession.shared.dataTask(with: request) { _, response, _ in
            let http = response as? HTTPURLResponse
            answer = (http?.statusCode ?? 0, http?.allHeaderFields ?? [:])
            done.signal()
        }.resume()
        XCTAssertEqual(done.wait(timeout: .now() + 20), .success)
        return answer
    }

    /// Runs `server` in a service group of its own, as `listen` does; returns its address and a
    /// function that shuts the group down and waits until it has.
    func serve(_ server: WebServer) throws -> (String, () -> Void) {
        let group = ServiceGroup(configuration: .init(services: [server], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        let deadline = Date().addingTimeInterval(10)
        while server.address == nil && Date() < deadline { usleep(10_000) }
        let address = try XCTUnwrap(server.address, "the server did not start listening")
        return (address, {
            let stopped = DispatchSemaphore(value: 0)
            Task {
                await group.triggerGracefulShutdown()
                _ = try? await running.value
                stopped.signal()
            }
            XCTAssertEqual(stopped.wait(timeout: .now() + 10), .success)
        })
    }

    func card() throws -> ModelCard {
        try ModelCard.load(from: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Models/emotion-cnn.json").standardized)
    }

    func testHealthzFollowsTheCaptureAndTheServerStops() throws {
        let server = WebServer(settings: try .init(address: "127.0.0.1:0", token: nil, uploadLimitBytes: 1_000_000),
                               monitor: .init(card: try card(), analyze: { _ in throw WebError("not here") }), metrics: WebMetrics(labels: try card().labels), logger: Logger(label: "test"))
        let (address, stop) = try serve(server)
        let url = "http://" + address + "/"
        XCTAssertEqual(try get(url + "healthz"), 200)
        server.capture(running: false)  // device lost
        XCTAssertEqual(try get(url + "healthz"), 503)
        server.capture(running: true)   // reopened
        XCTAssertEqual(try get(url + "healthz"), 200)
        stop()
        XCTAssertEqual(try get(url + "healthz"), 0, "nothing listens after its group shuts down")
    }

    func testMultipartFileFieldIsFound() {
        let body = Data("--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF1234\r\n--XyZ--\r\n".utf8)
        XCTAssertEqual(multipartFile(body, contentType: "multipart/form-data; boundary=XyZ"), Data("RIFF1234".utf8))
        XCTAssertNil(multipartFile(body, contentType: "multipart/form-data; boundary=Other"))
        XCTAssertNil(multipartFile(Data("--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nx\r\n--XyZ--".utf8),
                                   contentType: "multipart/form-data; boundary=XyZ"))
        // A part whose file is called "file" is not the field "file".
        let decoy = Data("--XyZ\r\nContent-Disposition: form-data; name=\"other\"; filename=\"file\"\r\n\r\ntext\r\n".utf8) + body
        XCTAssertEqual(multipartFile(decoy, contentType: "multipart/form-data; boundary=XyZ"), Data("RIFF1234".utf8))
    }

    func testHeadWrongMethodsAndTheTokenSchemeAnswerAsHTTPSays() throws {
        let server = WebServer(settings: try .init(address: "127.0.0.1:0", token: "T0k", uploadLimitBytes: 1_000_000),
                               monitor: .init(card: try card(), analyze: { _ in throw WebError("not here") }), metrics: WebMetrics(labels: try card().labels), logger: Logger(label: "test"))
        let (address, stop) = try serve(server)
        defer { stop() }
        let url = "http://" + address + "/"
        XCTAssertEqual(try Self.request(url + "healthz", method: "HEAD").status, 200, "health checkers send HEAD")
        XCTAssertEqual(try Self.request(url + "metrics", method: "HEAD", headers: ["Authorization": "bearer T0k"]).status, 200,
                       "the scheme's name is case-insensitive")
        XCTAssertEqual(try Self.request(url + "metrics", headers: ["Authorization": "Bearer t0k"]).status, 401, "the token is not")
        let wrong = try Self.request(url + "metrics", method: "POST", headers: ["Authorization": "Bearer T0k"])
        XCTAssertEqual(wrong.status, 405)
        XCTAssertEqual(wrong.headers["Allow"] as? String, "GET, HEAD")
        XCTAssertEqual(try Self.request(url + "nowhere", headers: ["Authorization": "Bearer T0k"]).status, 404)
    }

    func testUploadsBeyondTheOnesInProgressAreTurnedAway() throws {
        let release = DispatchSemaphore(value: 0), started = DispatchSemaphore(value: 0)
        let server = WebServer(settings: try .init(address: "127.0.0.1:0", token: nil, uploadLimitBytes: 1_000_000),
                               monitor: .init(card: try card(), analyze: { _ in
                                   started.signal()
                                   release.wait()  // an analysis that takes its time
                                   throw WebError("not audio")
                               }), metrics: WebMetrics(labels: try card().labels), logger: Logger(label: "test"))
        let (address, stop) = try serve(server)
        defer { stop() }
        let url = "http://" + address + "/analyze"
        let held = DispatchGroup()
        for _ in 0..<WebServer.uploadsAtOnce {
            DispatchQueue.global().async(group: held) { _ = try? WebServerTests.request(url, method: "POST", body: Data("RIFF".utf8)) }
        }
        XCTAssertEqual(started.wait(timeout: .now() + 10), .success)  // one is being analysed, the other waits its turn
        Thread.sleep(forTimeInterval: 0.5)
        let turnedAway = try Self.request(url, method: "POST", body: Data("RIFF".utf8))
        XCTAssertEqual(turnedAway.status, 503)
        XCTAssertNotNil(turnedAway.headers["Retry-After"])
        for _ in 0..<WebServer.uploadsAtOnce { release.signal() }
        XCTAssertEqual(held.wait(timeout: .now() + 20), .success)
    }
}

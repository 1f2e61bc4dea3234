import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import Model
import Output
import ServiceLifecycle
import Streaming
import Synchronization

/// The kiosk's web side, beside the monitor: the live status page and its event stream, the upload
/// page, Prometheus metrics and a health check, on Hummingbird. A `Service`: it runs in `listen`'s
/// service group and shuts down when the group does (after the monitor, which owns the signals).
/// Threading: handlers run on Hummingbird's tasks and never touch the live analyzer's queue (uploads
/// get a queue of their own); the sink calls come on the analyzer's queue and only hand events on.
public final class WebServer: Service, Sendable {
    /// Where to listen and what to allow.
    public struct Settings: Sendable {
        public var host: String
        public var port: Int
        /// Wanted as `Authorization: Bearer` (or `?token=` from the page) on every route but /healthz.
        public var token: String?
        public var uploadLimitBytes: Int

        /// `address` is HOST:PORT ([v6]:PORT for IPv6). Anything but loopback needs a token.
        public init(address: String, token: String?, uploadLimitBytes: Int) throws {
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (0...65_535).contains(port),
                  colon > address.startIndex else {
                throw WebError("--serve \(address): give HOST:PORT, e.g. 127.0.0.1:8080")
            }
            host = String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            self.port = port
            self.token = token
            self.uploadLimitBytes = uploadLimitBytes
            if token?.isEmpty == true { throw WebError("--token must not be empty") }
            if !isLoopback && token == nil {
                throw WebError("--serve \(address) is reachable from other machines: give --token T (clients then send Authorization: Bearer T)")
            }
        }

        var isLoopback: Bool { ["127.0.0.1", "::1", "localhost"].contains(host) || host.hasPrefix("127.") }
    }

    /// What the server asks of the monitor.
    public struct Monitor: Sendable {
        /// The model whose labels the page shows and uploads are analysed with.
        public var card: ModelCard
        /// Analyses a recording (a file path) as `analyze --segments --plot` would.
        public var analyze: @Sendable (String) throws -> ClipResult

        public init(card: ModelCard, analyze: @escaping @Sendable (String) throws -> ClipResult) {
            (self.card, self.analyze) = (card, analyze)
        }
    }

    public let settings: Settings
    public let hub: EventHub
    public let metrics: WebMetrics
    private let monitor: Monitor
    private let logger: Logger
    private let uploads = DispatchQueue(label: "emotion-monitor.uploads")
    private let uploadsInFlight = Mutex(0)
    /// False after device loss until the device is reopened (`/healthz` answers 503).
    private let healthy = Mutex(true)
    private let bound = Mutex<String?>(nil)

    /// `metrics`: what `/metrics` exposes, collected by the live pipeline whether or not it serves.
    public init(settings: Settings, monitor: Monitor, metrics: WebMetrics, logger: Logger) {
        self.settings = settings
        self.monitor = monitor
        self.logger = logger
        self.metrics = metrics
        hub = EventHub(metrics: metrics)
    }

    /// HOST:PORT the server listens on, once it does (with the port the system chose for port 0).
    public var address: String? { bound.withLock { $0 } }

    /// Serves until the service group shuts down, logging "serving http://HOST:PORT/" once bound;
    /// a one-line `WebError` when it cannot listen.
    public func run() async throws {
        let app = Application(
            router: router(),
            // A connection that sends nothing for 30 s, between requests or part-way through one
            // (headers, or a body that stopped arriving), is closed; a response in progress (an
            // event stream) keeps its connection.
            server: .http1(configuration: .init(idleTimeout: .seconds(30))),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "emotion-monitor",
                                 availableConnectionsDelegate: MaximumAvailableConnections(Self.connectionLimit(), logger: logger)),
            onServerRunning: { [self] channel in
                let port = channel.localAddress?.port ?? settings.port
                let address = (settings.host.contains(":") ? "[\(settings.host)]" : settings.host) + ":\(port)"
                bound.withLock { $0 = address }
                logger.notice("serving http://\(address)/")
            },
            logger: logger)
        // A group of its own, for its own limit: requests get a second to finish after a stop; then
        // their connections are cancelled, so an upload whose body stopped arriving or an event
        // client that stopped reading cannot hold the exit. An upload already being analysed still
        // finishes (its handler awaits the analysis).
        var configuration = ServiceGroupConfiguration(services: [app], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(1)
        let group = ServiceGroup(configuration: configuration)
        do {
            try await withGracefulShutdownHandler {
                try await group.run()
            } onGracefulShutdown: { [hub] in
                // The nested group follows the outer one's shutdown by itself; event streams end first.
                hub.finishAll()
            }
        } catch {
            throw WebError("--serve \(settings.host):\(settings.port): \(error)")
        }
    }

    /// Uploads held at once: they are analysed one at a time, and each may hold --upload-limit bytes.
    static let uploadsAtOnce = 2

    /// Connections served at once (more wait to be accepted): the open-file limit is raised to its
    /// hard maximum, and the cap leaves 64 descriptors beside it, so web clients can never take
    /// the ones the monitor needs (a capture device, the log, a replayed file).
    static func connectionLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 256 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(max(16, min(1024, Int64(clamping: limit.rlim_cur) - 64)))
    }

    /// Whether capture runs, for `/healthz`.
    public func capture(running: Bool) { healthy.withLock { $0 = running } }

    private func router() -> Router<BasicRequestContext> {
        // HEAD on every GET route, answered as GET without the body (health checkers send HEAD).
        let router = Router(options: .autoGenerateHeadEndpoints)
        if let token = settings.token { router.add(middleware: BearerToken(token: token)) }
        router.add(middleware: MethodCheck(routes: ["/": [.get], "/healthz": [.get], "/events": [.get], "/metrics": [.get],
                                                    "/analyze": [.get, .post]]))
        router.get("healthz") { [self] _, _ -> Response in
            healthy.withLock { $0 } ? text(.ok, "ok\n") : text(.serviceUnavailable, "capture device lost; reopening\n")
        }
        router.get("/") { [monitor, settings] _, _ -> Response in
            html(StatusPage.live(labels: monitor.card.labels, tokenRequired: settings.token != nil))
        }
        router.get("events") { [hub] _, _ -> Response in
            let (_, events) = hub.subscribe()
            var headers = HTTPFields()
            headers[.contentType] = "text/event-stream"
            headers[.cacheControl] = "no-cache"
            return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                // A comment first: the client knows it is connected before the first event.
                try await writer.write(ByteBuffer(string: ": emotion-monitor events\nretry: 2000\n\n"))
                for await frame in events { try await writer.write(ByteBuffer(string: frame)) }
                try await writer.finish(nil)
            })
        }
        router.get("metrics") { [metrics] _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.text)))
        }
        router.get("analyze") { [settings] _, _ -> Response in html(StatusPage.upload(limitBytes: settings.uploadLimitBytes)) }
        router.post("analyze") { [self] request, _ -> Response in
            let admitted = uploadsInFlight.withLock { count in
                guard count < Self.uploadsAtOnce else { return false }
                count += 1
                return true
            }
            do {
                guard admitted else {
                    var headers = HTTPFields()
                    headers[.retryAfter] = "10"
                    throw JSONError(.serviceUnavailable, "\(Self.uploadsAtOnce) uploads are in progress; retry later", headers: headers)
                }
                defer { uploadsInFlight.withLock { $0 -= 1 } }
                let body = try await analyzeUpload(request)
                metrics.upload(analysed: true)
                var headers = HTTPFields()
                headers[.contentType] = "application/json"
                return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body + "\n")))
            } catch {
                metrics.upload(analysed: false)
                throw error
            }
        }
        return router
    }

    /// An uploaded recording (multipart field `file`, or the raw body) analysed in a private
    /// temporary file, removed afterwards: the JSON `analyze --format jsonl --segments` prints, with
    /// the SVG plot added under "plot" when the query asks for `plot=1`; a `JSONError` when it cannot.
    private func analyzeUpload(_ request: Request) async throws -> String {
        let body: ByteBuffer
        do { body = try await request.body.collect(upTo: settings.uploadLimitBytes) } catch {
            throw JSONError(.contentTooLarge, "upload larger than \(settings.uploadLimitBytes) bytes")
        }
        var data = Data(buffer: body)
        if let type = request.headers[.contentType], type.lowercased().hasPrefix("multipart/form-data") {
            guard let file = multipartFile(data, contentType: type) else { throw JSONError(.badRequest, "multipart upload without a \"file\" field") }
            data = file
        }
        guard !data.isEmpty else { throw JSONError(.badRequest, "empty upload: send a recording as the body or as the form field \"file\"") }
        let upload = data
        let plot = request.uri.queryParameters["plot"] == "1"
        let (card, analyze) = (monitor.card, monitor.analyze)
        // Awaited even through a shutdown: the process must not exit while an analysis runs on
        // another thread (the libraries' teardown would pull the model from under it).
        return try await withCheckedThrowingContinuation { done in
            uploads.async {
                // Unlinked once written and read through its descriptor, so that no exit, however
                // abrupt, leaves it behind.
                guard let (fd, file) = OutputFile.makeTemporary(in: FileManager.default.temporaryDirectory.path, prefix: "emotion-monitor-upload-") else {
                    return done.resume(throwing: JSONError(.internalServerError, "cannot make a temporary file"))
                }
                defer { close(fd) }
                let written = Result { try OutputFile.writeAll(fd, upload, path: file) }
                unlink(file)
                guard case .success = written else { return done.resume(throwing: JSONError(.internalServerError, "cannot write a temporary file")) }
                let path = "/proc/self/fd/\(fd)"
                do {
                    var result = try analyze(path)
                    result.path = "upload"
                    var line = ClipReport(format: .jsonl, card: card).render(result)
                    if plot { line = String(line.dropLast()) + ", \"plot\": " + JSON.string(SVGPlot(card: card).render(result)).text + "}" }
                    done.resume(returning: line)
                } catch {
                    done.resume(throwing: JSONError(.unprocessableContent, "\(error)".replacingOccurrences(of: path, with: "upload")))
                }
            }
        }
    }
}

/// Every route but /healthz wants the token: as `Authorization: Bearer T`, or `?token=T` (a browser's
/// EventSource cannot send headers).
struct BearerToken<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // The scheme's name is case-insensitive (RFC 9110); the token is not.
        let bearer = request.headers[.authorization].flatMap { value -> String? in
            let parts = value.split(separator: " ", maxSplits: 1)
            return parts.count == 2 && parts[0].lowercased() == "bearer" ? String(parts[1]) : nil
        }
        if request.uri.path == "/healthz" || bearer == token || request.uri.queryParameters["token"].map(String.init) == token {
            return try await next(request, context)
        }
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = "Bearer"
        throw JSONError(.unauthorized, "missing or wrong bearer token", headers: headers)
    }
}

/// A known path asked with a method it does not take gets 405 and `Allow`, not the router's 404
/// (it only sees the requests no route takes).
struct MethodCheck<Context: RequestContext>: RouterMiddleware {
    /// Each path and the methods its routes take (HEAD goes with GET).
    let routes: [String: [HTTPRequest.Method]]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let methods = routes[request.uri.path], !methods.contains(request.method), request.method != .head else {
            return try await next(request, context)
        }
        var headers = HTTPFields()
        headers[.allow] = (methods + (methods.contains(.get) ? [.head] : [])).map(\.rawValue).joined(separator: ", ")
        throw JSONError(.methodNotAllowed, "\(request.method.rawValue) is not allowed here", headers: headers)
    }
}

/// What a route answers when it cannot serve a request: its status, the headers it needs (Allow,
/// WWW-Authenticate, Retry-After) and `{"error": message}`. Thrown; Hummingbird makes the response.
struct JSONError: HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String
    let headers: HTTPFields

    init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = HTTPFields()) {
        (self.status, self.message, self.headers) = (status, message, headers)
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers,
                        body: ResponseBody(byteBuffer: ByteBuffer(string: JSON.object([("error", .string(message))]).text + "\n")))
    }
}

/// The content of the multipart part named "file", or nil.
func multipartFile(_ body: Data, contentType: String) -> Data? {
    guard let boundary = contentType.components(separatedBy: "boundary=").last?.trimmingCharacters(in: CharacterSet(charactersIn: "\" ")),
          !boundary.isEmpty else { return nil }
    let delimiter = Data("--\(boundary)".utf8), headerEnd = Data("\r\n\r\n".utf8)
    var start = body.startIndex
    while let open = body.range(of: delimiter, in: start..<body.endIndex) {
        guard let headers = body.range(of: headerEnd, in: open.upperBound..<body.endIndex),
              let close = body.range(of: Data("\r\n".utf8) + delimiter, in: headers.upperBound..<body.endIndex) else { return nil }
        let head = String(decoding: body[open.upperBound..<headers.lowerBound], as: UTF8.self)
        if partName(head) == "file" { return body[headers.upperBound..<close.lowerBound] }
        start = close.lowerBound + 2
    }
    return nil
}

/// The `name` parameter of a part's Content-Disposition header (not `filename`, which also ends in "name").
private func partName(_ headers: String) -> String? {
    for line in headers.split(separator: "\r\n") where line.lowercased().hasPrefix("content-disposition:") {
        for parameter in line.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "name" { return pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        }
    }
    return nil
}

private func text(_ status: HTTPResponse.Status, _ body: String) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "text/plain; charset=utf-8"
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
}

private func html(_ page: String) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = "text/html; charset=utf-8"
    return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: page)))
}

/// A one-line error for the CLI to print.
public struct WebError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The web side as a live sink: each event to the event stream, the capture's health to `/healthz`
/// (the metrics are a sink of their own). Neither waits on a client (the hub's queues are bounded).
extension WebServer: LiveEventSink {
    public func receive(_ event: LiveEvent, _ context: LiveEventContext) {
        hub.publish(context.jsonLine)
    }

    public func receive(health: SourceHealth, dropped: Int) {
        capture(running: !health.reconnecting)
    }

    /// No more events: event streams end now, before the server itself stops.
    public func finish() { hub.finishAll() }
}

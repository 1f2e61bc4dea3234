import CMosquitto
import Foundation
import Logging
import Output
import ServiceLifecycle
import Streaming
import Synchronization

/// What the publisher reports to a metrics system; `WebMetrics` implements it (the conformance is in
/// the CLI), so the broker needs no web server. Threading: called from any thread.
public protocol BrokerMetrics: Sendable {
    func brokerEventDropped()
    func broker(connected: Bool)
}

/// A broker URL that cannot be used, or a client libmosquitto cannot make.
public struct BrokerError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Publishes each live event (the event log's JSON) to an MQTT broker through libmosquitto, with
/// QoS 1, on `emotion-monitor/HOST/events`. While the broker is away, events wait in a bounded queue
/// (the oldest dropped and counted); libmosquitto's own thread reconnects with backoff.
/// Threading: `publish` from the analyzer queue, never blocking on the network; libmosquitto's
/// callbacks run on its thread; the queue and connection state sit behind one mutex.
public final class BrokerPublisher: Sendable {
    /// Events kept while the broker is away (17 minutes at the default 1 s hop).
    public static let queueLength = 1000
    public let topic: String
    public let address: String
    private let client: Client
    private let state = Mutex(State())
    private let metrics: (any BrokerMetrics)?
    private let logger: Logger

    private struct State {
        var connected = false
        var waiting: [String] = []
    }

    /// The libmosquitto handle. Unchecked Sendable: libmosquitto is thread-safe once its loop thread runs.
    private final class Client: @unchecked Sendable {
        let handle: OpaquePointer
        init(_ handle: OpaquePointer) { self.handle = handle }
    }

    /// `url`: mqtt://[user:password@]host[:port]; metrics count what is dropped.
    public init(url: String, metrics: (any BrokerMetrics)?, logger: Logger) throws {
        guard let parts = URLComponents(string: url), parts.scheme == "mqtt", let host = parts.host, !host.isEmpty else {
            throw BrokerError("--mqtt \(url): give mqtt://HOST[:PORT]")
        }
        let port = parts.port ?? 1883
        self.metrics = metrics
        self.logger = logger
        let name = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        topic = "emotion-monitor/\(name)/events"
        address = "\(host):\(port)"
        mosquitto_lib_init()
        guard let handle = mosquitto_new("emotion-monitor-\(name)-\(getpid())", true, nil) else {
            throw BrokerError("--mqtt: cannot create an MQTT client")
        }
        client = Client(handle)
        if let user = parts.user { mosquitto_username_pw_set(handle, user, parts.password) }
        mosquitto_reconnect_delay_set(handle, 1, 30, true)
        // The callbacks find this object through libmosquitto's user-data pointer.
        mosquitto_user_data_set(handle, Unmanaged.passUnretained(self).toOpaque())
        mosquitto_connect_callback_set(handle) { _, object, code in
            guard let object, code == 0 else { return }
            Unmanaged<BrokerPublisher>.fromOpaque(object).takeUnretainedValue().connected(true)
        }
        mosquitto_disconnect_callback_set(handle) { _, object, _ in
            guard let object else { return }
            Unmanaged<BrokerPublisher>.fromOpaque(object).takeUnretainedValue().connected(false)
        }
        // Asynchronous: an absent broker is a warning and a queue, not a failure to start.
        let code = mosquitto_connect_async(handle, host, Int32(port), 30)
        if code != Int32(MOSQ_ERR_SUCCESS.rawValue) && code != Int32(MOSQ_ERR_ERRNO.rawValue) {
            mosquitto_destroy(handle)
            throw BrokerError("--mqtt \(url): \(String(cString: mosquitto_strerror(code)))")
        }
        mosquitto_loop_start(handle)
    }

    /// Sends `line` now when connected, else queues it.
    public func publish(_ line: String) {
        let direct = state.withLock { state -> Bool in
            guard state.connected && state.waiting.isEmpty else {
                enqueue(line, in: &state)
                return false
            }
            return true
        }
        if direct && !send(line) { state.withLock { enqueue(line, in: &$0) } }
    }

    private func enqueue(_ line: String, in state: inout State) {
        if state.waiting.count >= Self.queueLength {
            state.waiting.removeFirst()
            metrics?.brokerEventDropped()
        }
        state.waiting.append(line)
    }

    private func send(_ line: String) -> Bool {
        let bytes = Array(line.utf8)
        return mosquitto_publish(client.handle, nil, topic, Int32(bytes.count), bytes, 1, false) == Int32(MOSQ_ERR_SUCCESS.rawValue)
    }

    private func connected(_ up: Bool) {
        metrics?.broker(connected: up)
        guard up else { return state.withLock { $0.connected = false } }
        // Queued events first, in order, then live ones.
        while true {
            let next = state.withLock { state -> String? in
                guard let first = state.waiting.first else {
                    state.connected = true
                    return nil
                }
                state.waiting.removeFirst()
                return first
            }
            guard let next else { return }
            if !send(next) { return state.withLock { $0.waiting.insert(next, at: 0) } }
        }
    }

    /// Gives queued and in-flight events up to `seconds` to leave, then disconnects; returns how
    /// many never reached the broker.
    public func stop(within seconds: Double = 2) -> Int {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline, state.withLock({ !$0.waiting.isEmpty && $0.connected }) { usleep(20_000) }
        usleep(100_000)  // QoS 1 acknowledgements of the last events
        mosquitto_disconnect(client.handle)
        mosquitto_loop_stop(client.handle, false)
        mosquitto_destroy(client.handle)
        return state.withLock { $0.waiting.count }
    }
}

/// A `Service` in `listen`'s group, shut down last: the events of the monitor's final drain still
/// leave, and what never reached the broker is counted in the diagnostics.
extension BrokerPublisher: Service {
    public func run() async throws {
        // Cancelled rather than shut down, it still gives the queue its time to leave.
        try? await gracefulShutdown()
        let lost = await withCheckedContinuation { done in DispatchQueue.global().async { done.resume(returning: self.stop()) } }
        if lost > 0 { logger.warning("\(lost) events never reached the broker at mqtt://\(address)") }
    }
}

/// The broker as a live sink: `publish` never blocks on the network.
extension BrokerPublisher: LiveEventSink {
    public func receive(_ event: LiveEvent, _ context: LiveEventContext) { publish(context.jsonLine) }
}

import Dispatch
import Foundation
import Synchronization

/// Fans each live event out to the Server-Sent-Events clients as ready-made SSE frames, each
/// client through its own bounded queue: publishing never waits, so a slow or stalled client loses
/// its oldest events (counted), never the analyzer's time. A comment every 2 s finds the clients
/// that went away while nothing was said (a write is the only way to notice).
/// Threading: `publish` from the analyzer queue, the rest from server tasks and the heartbeat's
/// queue; the client table sits behind a mutex held only to copy or change it.
public final class EventHub: Sendable {
    /// Events a client may fall behind by before its oldest are dropped (32 s at a 0.5 s hop).
    public static let queueLength = 64
    private let clients = Mutex<[UUID: AsyncStream<String>.Continuation]>([:])
    private let metrics: WebMetrics
    // Unsafe only to the checker: set up in init, touched again only by deinit.
    nonisolated(unsafe) private let heartbeat: any DispatchSourceTimer

    public init(metrics: WebMetrics) {
        self.metrics = metrics
        heartbeat = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "emotion-monitor.sse-heartbeat"))
        heartbeat.schedule(deadline: .now() + 2, repeating: 2)
        heartbeat.setEventHandler { [weak self] in self?.send(": keep-alive\n\n") }
        heartbeat.resume()
    }

    deinit { heartbeat.cancel() }

    /// A new client's stream of SSE frames; it ends at `finishAll` or when the client goes.
    public func subscribe() -> (id: UUID, events: AsyncStream<String>) {
        let id = UUID()
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(Self.queueLength))
        continuation.onTermination = { [weak self] _ in self?.remove(id) }
        let count = clients.withLock { table in
            table[id] = continuation
            return table.count
        }
        metrics.sseClients(count)
        return (id, stream)
    }

    private func remove(_ id: UUID) {
        let count = clients.withLock { table in
            table[id] = nil
            return table.count
        }
        metrics.sseClients(count)
    }

    /// Hands the event `line` (one JSON object) to every client's queue.
    public func publish(_ line: String) { send("data: \(line)\n\n") }

    private func send(_ frame: String) {
        for continuation in clients.withLock({ Array($0.values) }) {
            if case .dropped = continuation.yield(frame) { metrics.sseEventDropped() }
        }
    }

    /// Ends every client's stream, so that the server can shut down.
    public func finishAll() {
        for continuation in clients.withLock({ Array($0.values) }) { continuation.finish() }
    }
}

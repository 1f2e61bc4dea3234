import Foundation
import Streaming

/// Where live events go: the status line, standard output, the log, the web side, a broker. `listen`
/// builds its list once from its options and hands every event and health report to each in turn.
/// Threading: every call comes on the analyzer's queue, one at a time; a sink that could be slow
/// (a network peer) hands the work to a queue of its own, so that no sink slows the analyzer.
public protocol LiveEventSink: AnyObject {
    /// One event. A thrown `SinkFailure` says whether the run can go on without this sink.
    func receive(_ event: LiveEvent, _ context: LiveEventContext) throws
    /// The capture's health, about once a second.
    func receive(health: SourceHealth, dropped: Int)
    /// Files the sink writes are to be reopened (SIGHUP in kiosk mode: logrotate has moved them).
    /// Returns what was reopened, for the diagnostics, or nil when the sink writes no file.
    func reopen() throws -> String?
    /// The run has ended.
    func finish()
}

extension LiveEventSink {
    public func receive(health: SourceHealth, dropped: Int) {}
    public func reopen() throws -> String? { nil }
    public func finish() {}
}

/// A sink that can take no more events.
public struct SinkFailure: Error, CustomStringConvertible {
    public let description: String
    /// False when the events still reach the user another way (stdout failed beside a log): the run
    /// goes on without this sink, saying so.
    public let stopsTheRun: Bool

    public init(_ description: String, stopsTheRun: Bool) { (self.description, self.stopsTheRun) = (description, stopsTheRun) }
}

/// What the sinks share about one event: when it was delivered, the capture's counters, the label's
/// delay, and its JSON line, rendered at most once for every sink that sends one.
/// Threading: made and used on the analyzer's queue.
public final class LiveEventContext {
    public let time: Date
    public let dropped: Int
    public let overruns: Int
    /// Seconds from the end of the window's audio to its delivery, when the source runs in real time.
    public let latency: Double?
    /// Seconds of audio per event (the hop): how much voice a voiced event stands for.
    public let hopSeconds: Double
    private let event: LiveEvent
    private let record: EventRecord

    public init(event: LiveEvent, record: EventRecord, time: Date, dropped: Int, overruns: Int, latency: Double?, hopSeconds: Double) {
        (self.event, self.record, self.time, self.dropped, self.overruns, self.latency, self.hopSeconds) =
            (event, record, time, dropped, overruns, latency, hopSeconds)
    }

    /// The event as the JSON line stdout, the event stream and the broker carry.
    public private(set) lazy var jsonLine = record.line(event, at: time, dropped: dropped, overruns: overruns)
}

extension StatusLine: LiveEventSink {
    public func receive(_ event: LiveEvent, _ context: LiveEventContext) {
        draw(event, dropped: context.dropped, overruns: context.overruns)
    }
}

/// Events as JSON lines on standard output. Threading: the analyzer's queue only.
public final class StandardOutputSink: LiveEventSink {
    /// A log beside it still has every event when standard output fails.
    private let besideALog: Bool

    public init(besideALog: Bool) { self.besideALog = besideALog }

    public func receive(_ event: LiveEvent, _ context: LiveEventContext) throws {
        do { try StandardOutput.line(context.jsonLine) } catch {
            throw besideALog ? SinkFailure("\(error); events go to the log only from now on", stopsTheRun: false)
                             : SinkFailure("\(error); stopping", stopsTheRun: true)
        }
    }
}

/// Events appended to `--log` in its format; `reopen` follows logrotate. Threading: the analyzer's queue only.
public final class LogSink: LiveEventSink {
    public let log: EventLog
    private let record: EventRecord

    public init(path: String, record: EventRecord) throws {
        self.record = record
        log = try EventLog(path: path, header: record.format == .csv ? record.csvHeader : nil)
    }

    public func receive(_ event: LiveEvent, _ context: LiveEventContext) throws {
        do { try log.write(record.line(event, at: context.time, dropped: context.dropped, overruns: context.overruns)) } catch {
            throw SinkFailure("\(error); events are being lost, stopping", stopsTheRun: true)
        }
    }

    public func reopen() throws -> String? {
        try log.reopen()
        return log.path
    }
}

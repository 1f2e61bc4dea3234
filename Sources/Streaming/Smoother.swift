import Features

/// How the live label is steadied. Threading: a value type, freely shared.
public struct SmoothingSettings: Codable, Equatable, Sendable {
    /// Voiced windows averaged (a moving average of probabilities): 4 windows at the 1 s hop is 4 s.
    public var windows: Int = 4
    /// Another emotion must lead the shown one by this much probability before the label switches.
    public var hysteresis: Double = 0.1

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable { case windows, hysteresis }

    public init(from decoder: Decoder) throws {
        let c = try decoder.settings(CodingKeys.self), d = SmoothingSettings()
        windows = try c.value(.windows, or: d.windows)
        hysteresis = try c.value(.hysteresis, or: d.hysteresis)
    }
}

/// Moving average of window probabilities plus hysteresis, so the shown label follows the voice
/// without flickering between close alternatives. Silence clears the history: a new utterance
/// starts fresh. Threading: not thread-safe; owned by the analyzer.
public struct Smoother: Sendable {
    public let settings: SmoothingSettings
    private var history: [[Float]] = []
    public private(set) var label: Int?

    public init(settings: SmoothingSettings) { self.settings = settings }

    /// Adds one voiced window's probabilities; returns the smoothed probabilities and the shown label.
    public mutating func add(_ probabilities: [Float]) -> (probabilities: [Float], label: Int) {
        history.append(probabilities)
        if history.count > max(1, settings.windows) { history.removeFirst(history.count - max(1, settings.windows)) }
        let mean = meanProbabilities(history)
        let best = mean.indices.max { mean[$0] < mean[$1] }!
        if let current = label, current < mean.count, mean[best] - mean[current] < Float(settings.hysteresis) {
            return (mean, current)
        }
        label = best
        return (mean, best)
    }

    public mutating func silence() {
        history.removeAll()
        label = nil
    }
}

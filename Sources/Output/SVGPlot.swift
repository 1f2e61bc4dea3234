import Features
import Foundation
import Model
import Streaming

/// Draws one analysed file as an SVG: waveform envelope, log-mel spectrogram and the emotion
/// timeline (each hop coloured by the window ending there, and one probability curve per emotion).
/// Threading: a value type, freely shared.
public struct SVGPlot: Sendable {
    public let labels: [String]
    public let melBands: Int
    /// One colour per emotion, in label order.
    static let palette = ["#8c8c8c", "#5fa8d3", "#f2c14e", "#3d5a80", "#d62828", "#7b2cbf", "#2a9d8f", "#f77f00"]
    static let width = 1000.0, left = 70.0, right = 130.0
    /// Spectrogram columns at most: keeps an hour-long file's SVG small.
    static let maxColumns = 400

    public init(card: ModelCard) {
        labels = card.labels
        melBands = card.features.melBands
    }

    public func render(_ r: ClipResult) -> String {
        let plotWidth = Self.width - Self.left - Self.right
        let duration = max(r.duration, 1e-3)
        func x(_ t: Double) -> Double { Self.left + plotWidth * min(max(t / duration, 0), 1) }
        var svg = ["<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(f(Self.width))\" height=\"560\" font-family=\"sans-serif\" font-size=\"12\">",
                   "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
                   "<text x=\"\(Self.left)\" y=\"20\" font-size=\"14\">\(escape((r.path as NSString).lastPathComponent)): "
                       + "\(top(r.emotion, labels).0) \(percent(top(r.emotion, labels).1))</text>"]

        // Waveform: the RMS envelope of 10 ms frames, mirrored.
        let energies = r.energies ?? []
        let waveTop = 40.0, waveHeight = 100.0, mid = waveTop + waveHeight / 2
        svg.append(panel("waveform", y: waveTop, height: waveHeight))
        if !energies.isEmpty {
            let step = max(1, energies.count / 1000)
            var upper: [String] = [], lower: [String] = []
            for i in stride(from: 0, to: energies.count, by: step) {
                let rms = Double(energies[i..<min(i + step, energies.count)].max() ?? 0).squareRoot()
                let t = Double(i) * Double(EnergyMeter.frameLength) / 16_000
                upper.append(String(format: "%.1f,%.1f", x(t), mid - min(rms, 1) * waveHeight / 2))
                lower.insert(String(format: "%.1f,%.1f", x(t), mid + min(rms, 1) * waveHeight / 2), at: 0)
            }
            svg.append("<polygon fill=\"#3d5a80\" points=\"\((upper + lower).joined(separator: " "))\"/>")
        }

        // Spectrogram: mel bands bottom to top, time averaged into at most maxColumns columns.
        let specTop = 160.0, specHeight = 160.0
        svg.append(panel("log-mel", y: specTop, height: specHeight))
        if let frames = r.frames, frames.count >= melBands, let lo = frames.min(), let hi = frames.max() {
            let count = frames.count / melBands
            let columns = min(count, Self.maxColumns)
            let cellWidth = plotWidth / Double(columns), cellHeight = specHeight / Double(melBands)
            for c in 0..<columns {
                let range = (c * count / columns)..<max(c * count / columns + 1, (c + 1) * count / columns)
                for m in 0..<melBands {
                    let value = range.reduce(Float(0)) { $0 + frames[$1 * melBands + m] } / Float(range.count)
                    svg.append("<rect x=\"\(f(Self.left + Double(c) * cellWidth))\" y=\"\(f(specTop + specHeight - Double(m + 1) * cellHeight))\" "
                               + "width=\"\(f(cellWidth + 0.3))\" height=\"\(f(cellHeight + 0.3))\" fill=\"\(heat(Double((value - lo) / max(hi - lo, 1e-6))))\"/>")
                }
            }
        }

        // Emotion timeline: a band coloured by each hop's label, then the probability curves.
        let lineTop = 340.0, lineHeight = 160.0
        svg.append(panel("emotion", y: lineTop, height: lineHeight))
        let segments = r.segments ?? []
        // Each window colours the time since the previous window ended (the first, its whole span).
        for (i, s) in segments.enumerated() {
            let from = i == 0 ? s.start : segments[i - 1].end
            let (label, _) = s.prediction.map { top($0.emotion, labels) } ?? ("silence", 0)
            let colour = labels.firstIndex(of: label).map { Self.palette[$0 % Self.palette.count] } ?? "#eeeeee"
            svg.append("<rect x=\"\(f(x(from)))\" y=\"\(f(lineTop + lineHeight + 4))\" width=\"\(f(max(0.5, x(s.end) - x(from))))\" height=\"8\" fill=\"\(colour)\"/>")
        }
        for (k, label) in labels.enumerated() {
            let points = segments.compactMap { s in s.prediction.map { p in
                String(format: "%.1f,%.1f", x(s.end), lineTop + lineHeight * (1 - Double(p.emotion[k])))
            } }
            let colour = Self.palette[k % Self.palette.count]
            if points.count > 1 {
                svg.append("<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(points.joined(separator: " "))\"/>")
            }
            let legendY = lineTop + Double(k) * 18
            svg.append("<rect x=\"\(f(Self.width - Self.right + 15))\" y=\"\(f(legendY))\" width=\"10\" height=\"10\" fill=\"\(colour)\"/>"
                       + "<text x=\"\(f(Self.width - Self.right + 30))\" y=\"\(f(legendY + 10))\">\(escape(label))</text>")
        }
        for t in timeTicks(duration) {
            svg.append("<text x=\"\(f(x(t)))\" y=\"540\" text-anchor=\"middle\">\(formatSeconds(t))</text>")
        }
        svg.append("</svg>")
        return svg.joined(separator: "\n") + "\n"
    }

    private func panel(_ title: String, y: Double, height: Double) -> String {
        "<rect x=\"\(f(Self.left))\" y=\"\(f(y))\" width=\"\(f(Self.width - Self.left - Self.right))\" height=\"\(f(height))\" "
            + "fill=\"none\" stroke=\"#cccccc\"/><text x=\"\(f(Self.left - 6))\" y=\"\(f(y + height / 2))\" text-anchor=\"end\">\(title)</text>"
    }
}

/// About six round tick positions across `duration` seconds.
func timeTicks(_ duration: Double) -> [Double] {
    let raw = duration / 6
    let step = [0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600].first { $0 >= raw } ?? 3600
    return Array(stride(from: 0, through: duration, by: step))
}

func formatSeconds(_ t: Double) -> String {
    t >= 60 ? String(format: "%d:%02d", Int(t) / 60, Int(t) % 60) : String(format: t == t.rounded() ? "%.0f s" : "%.1f s", t)
}

/// Dark blue -> teal -> yellow, like the perceptual maps spectrograms are usually drawn with.
func heat(_ v: Double) -> String {
    let stops: [(Double, Double, Double)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
    let p = min(max(v, 0), 1) * Double(stops.count - 1)
    let i = min(Int(p), stops.count - 2), f = p - Double(i)
    let (a, b) = (stops[i], stops[i + 1])
    return String(format: "#%02x%02x%02x", Int(a.0 + (b.0 - a.0) * f), Int(a.1 + (b.1 - a.1) * f), Int(a.2 + (b.2 - a.2) * f))
}

/// SVG coordinates: one decimal is finer than a pixel.
func f(_ x: Double) -> String { String(format: "%.1f", x) }

func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}

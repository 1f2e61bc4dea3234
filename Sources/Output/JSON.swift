import Foundation

/// A JSON value written with its keys in the order given: the output formats promise a field order,
/// which JSONEncoder does not keep. Threading: a value type, freely shared.
public indirect enum JSON: Sendable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    case array([JSON])
    case object([(String, JSON)])

    /// Probabilities and times: 4 decimals is finer than any difference that means anything here.
    public static func rounded(_ x: Double, places: Int = 4) -> JSON {
        let scale = pow(10, Double(places))
        return .number((x * scale).rounded() / scale)
    }

    public var text: String {
        switch self {
        case .string(let s): return JSON.quote(s)
        case .number(let x):
            if !x.isFinite { return "null" }
            if x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) }
            return String(x)
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .array(let items): return "[" + items.map(\.text).joined(separator: ", ") + "]"
        case .object(let fields): return "{" + fields.map { JSON.quote($0.0) + ": " + $0.1.text }.joined(separator: ", ") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

import Foundation

/// Errors loading a model, each a one-line message for the user.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case unreadable(String, reason: String)
    case corrupt(String, reason: String)
    case mismatch(String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let p, let r): return "\(p): cannot read model (\(r))"
        case .corrupt(let p, let r): return "\(p): corrupt model file (\(r))"
        case .mismatch(let p, let r): return "\(p): model does not match its card (\(r))"
        }
    }
}

/// A parsed safetensors file holding F32 tensors: an 8-byte little-endian header length,
/// a JSON header {name: {dtype, shape, data_offsets}}, then the raw little-endian data.
/// Threading: immutable after init; safe to share.
public struct SafeTensors {
    public struct Tensor {
        public let shape: [Int]
        public let values: [Float]
    }

    public let tensors: [String: Tensor]

    public init(contentsOf url: URL) throws {
        let path = url.path
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ModelError.unreadable(path, reason: FileManager.default.fileExists(atPath: path) ? "permission or I/O error" : "no such file")
        }
        guard data.count >= 8 else { throw ModelError.corrupt(path, reason: "\(data.count) bytes is too short for a safetensors header") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8) else { throw ModelError.corrupt(path, reason: "header length \(headerLength) runs past the end of the file") }
        let body = data.index(data.startIndex, offsetBy: 8 + Int(headerLength))
        guard let header = try? JSONSerialization.jsonObject(with: data[(data.startIndex + 8)..<body]) as? [String: Any] else {
            throw ModelError.corrupt(path, reason: "header is not a JSON object")
        }
        let payload = data[body...]
        var tensors: [String: Tensor] = [:]
        for (name, entry) in header where name != "__metadata__" {
            guard let entry = entry as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2 else {
                throw ModelError.corrupt(path, reason: "malformed header entry '\(name)'")
            }
            guard dtype == "F32" else { throw ModelError.corrupt(path, reason: "tensor '\(name)' is \(dtype); only F32 is supported") }
            var count = 1, overflow = shape.contains { $0 < 0 }
            for d in shape where !overflow { (count, overflow) = count.multipliedReportingOverflow(by: d) }
            guard !overflow, count <= Int.max / 4, offsets[0] >= 0, offsets[0] <= offsets[1],
                  offsets[1] - offsets[0] == count * 4, offsets[1] <= payload.count else {
                throw ModelError.corrupt(path, reason: "tensor '\(name)' data is truncated or misplaced")
            }
            let bytes = payload[(payload.startIndex + offsets[0])..<(payload.startIndex + offsets[1])]
            let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                _ = bytes.copyBytes(to: buffer)
                for i in 0..<count { buffer[i] = Float(bitPattern: UInt32(littleEndian: buffer[i].bitPattern)) }
                initialized = count
            }
            tensors[name] = Tensor(shape: shape, values: values)
        }
        self.tensors = tensors
    }

    /// The tensor `name`, checked to have `shape`.
    public func tensor(_ name: String, shape: [Int], file: String) throws -> [Float] {
        guard let t = tensors[name] else { throw ModelError.mismatch(file, reason: "tensor '\(name)' is missing") }
        guard t.shape == shape else { throw ModelError.mismatch(file, reason: "tensor '\(name)' has shape \(t.shape), expected \(shape)") }
        return t.values
    }
}

import Foundation

/// The variables of a CTranslate2 `model.bin` (format version 6), memory-mapped: a u32 version, the
/// spec's name, a u32 revision and variable count, then per variable its name, rank, dims, dtype
/// code, byte count and little-endian bytes (strings are a u16 length and NUL-padded bytes). Only
/// what a caller asks for is converted, so Whisper's decoder, three quarters of the file, is never read.
/// Threading: immutable after init; safe to share.
public struct CTranslate2Model {
    struct Variable {
        let shape: [Int]
        let dtype: UInt8
        let bytes: Range<Int>
    }

    public let path: String
    /// The model's spec, e.g. "WhisperSpec".
    public let spec: String
    let data: Data
    let variables: [String: Variable]

    public init(path: String) throws {
        self.path = path
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw ModelError.unreadable(path, reason: FileManager.default.fileExists(atPath: path) ? "permission or I/O error" : "no such file")
        }
        var reader = Reader(data: data, path: path)
        let version = try reader.integer(UInt32.self)
        guard version == 6 else { throw ModelError.corrupt(path, reason: "CTranslate2 format version \(version), expected 6") }
        spec = try reader.string()
        _ = try reader.integer(UInt32.self)
        var variables: [String: Variable] = [:]
        for _ in 0..<(try reader.integer(UInt32.self)) {
            let name = try reader.string()
            let rank = Int(try reader.integer(UInt8.self))
            let shape = try (0..<rank).map { _ in Int(try reader.integer(UInt32.self)) }
            let dtype = try reader.integer(UInt8.self)
            let size = Int(try reader.integer(UInt32.self))
            variables[name] = Variable(shape: shape, dtype: dtype, bytes: try reader.skip(size))
        }
        self.variables = variables
    }

    /// The float variable `name` as Float32 (stored as float32 or float16), checked to have `shape`.
    public func floats(_ name: String, shape: [Int]) throws -> [Float] {
        guard let v = variables[name] else { throw ModelError.mismatch(path, reason: "variable '\(name)' is missing") }
        guard v.shape == shape else { throw ModelError.mismatch(path, reason: "variable '\(name)' has shape \(v.shape), expected \(shape)") }
        let count = shape.reduce(1, *)
        let width = v.dtype == 0 ? 4 : v.dtype == 4 ? 2 : 0
        guard width > 0, v.bytes.count == count * width else {
            throw ModelError.corrupt(path, reason: "variable '\(name)' is not float32 or float16 of its shape")
        }
        let values = data[v.bytes].withUnsafeBytes { raw in
            (0..<count).map { i -> Float in
                width == 4 ? Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                    : Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
            }
        }
        guard values.allSatisfy(\.isFinite) else { throw ModelError.corrupt(path, reason: "variable '\(name)' holds NaN or infinite values") }
        return values
    }

    /// The shape of variable `name`, nil when there is none.
    public func shape(_ name: String) -> [Int]? { variables[name]?.shape }

    /// A small integer variable (a count, such as a layer's heads), nil when absent or not an integer.
    public func integer(_ name: String) -> Int? {
        guard let v = variables[name], v.shape.isEmpty else { return nil }
        return data[v.bytes].withUnsafeBytes { raw in
            switch (v.dtype, raw.count) {
            case (1, 1): return Int(raw.load(as: Int8.self))
            case (2, 2): return Int(Int16(littleEndian: raw.loadUnaligned(as: Int16.self)))
            case (3, 4): return Int(Int32(littleEndian: raw.loadUnaligned(as: Int32.self)))
            default: return nil
            }
        }
    }

    /// Bounds-checked little-endian reads over the file.
    private struct Reader {
        let data: Data, path: String
        var offset = 0

        mutating func skip(_ count: Int) throws -> Range<Int> {
            guard count >= 0, count <= data.count - offset else {
                throw ModelError.corrupt(path, reason: "truncated at byte \(offset) of \(data.count)")
            }
            defer { offset += count }
            return (data.startIndex + offset)..<(data.startIndex + offset + count)
        }

        mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
            let range = try skip(MemoryLayout<T>.size)
            return T(littleEndian: data[range].withUnsafeBytes { $0.loadUnaligned(as: T.self) })
        }

        mutating func string() throws -> String {
            let bytes = data[try skip(Int(try integer(UInt16.self)))]
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

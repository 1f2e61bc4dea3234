import CSoxr

/// Streaming sample-rate conversion of mono Float audio with libsoxr (its default high quality).
/// When the rates match it passes samples through untouched, so 16 kHz input is bit-exact.
/// Threading: not thread-safe; one stream per instance.
public final class Resampler {
    public let inputRate: Int
    public let outputRate: Int
    private let soxr: soxr_t?
    private var scratch: [Float] = []

    public init(inputRate: Int, outputRate: Int) throws {
        self.inputRate = inputRate
        self.outputRate = outputRate
        guard inputRate != outputRate else {
            soxr = nil
            return
        }
        var error: soxr_error_t?
        let handle = soxr_create(Double(inputRate), Double(outputRate), 1, &error, nil, nil, nil)
        if let error { throw AudioError.resampler(String(cString: error)) }
        soxr = handle
    }

    deinit { soxr_delete(soxr) }

    /// Converts `input`, appending the output produced so far to `output`.
    public func process(_ input: ArraySlice<Float>, into output: inout [Float]) throws {
        guard !input.isEmpty else { return }  // soxr would take empty input as the end of the stream
        guard let soxr else {
            output.append(contentsOf: input)
            return
        }
        try run(soxr, input, into: &output)
    }

    /// Drains the samples the filter still holds; call once at the end of the stream.
    public func flush(into output: inout [Float]) throws {
        guard let soxr else { return }
        try run(soxr, [], into: &output)
    }

    private func run(_ soxr: soxr_t, _ input: ArraySlice<Float>, into output: inout [Float]) throws {
        let capacity = Int(Double(input.count) * Double(outputRate) / Double(inputRate)) + 1024
        if scratch.count < capacity { scratch = [Float](repeating: 0, count: capacity) }
        var consumed = 0
        while true {
            var used = 0, produced = 0
            let error = input.withUnsafeBufferPointer { inBuf in
                scratch.withUnsafeMutableBufferPointer { outBuf in
                    // A nil input pointer tells soxr the stream has ended (flush).
                    soxr_process(soxr, input.isEmpty ? nil : inBuf.baseAddress! + consumed, input.count - consumed, &used,
                                 outBuf.baseAddress, outBuf.count, &produced)
                }
            }
            if let error { throw AudioError.resampler(String(cString: error)) }
            consumed += used
            output.append(contentsOf: scratch[0..<produced])
            if input.isEmpty ? produced == 0 : consumed == input.count { return }
        }
    }
}

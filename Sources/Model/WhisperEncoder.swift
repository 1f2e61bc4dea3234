import COpenBLAS
import Foundation

/// Whisper's audio encoder (OpenAI's architecture, as CTranslate2 stores it), converted to float32:
/// conv1d(80 → d, k3) → GELU → conv1d(d → d, k3, stride 2) → GELU → + sinusoidal positions → pre-norm
/// transformer blocks (fused QKV self-attention, 4d GELU feed-forward) → final layer norm.
/// Only the first `layers` blocks are kept: a head that reads early layers never pays for the rest.
/// Threading: immutable after init; one instance serves any number of `WhisperEncoder`s.
/// Unchecked Sendable: every property is a `let` of value types, fixed at init.
public final class WhisperEncoderWeights: @unchecked Sendable {
    struct Linear {
        let inputs: Int, outputs: Int
        let weight: [Float]  // [outputs][inputs]
        let bias: [Float]
    }

    struct Norm {
        let gamma: [Float], beta: [Float]
    }

    struct Block {
        let attentionNorm: Norm, qkv: Linear, attentionOut: Linear
        let feedForwardNorm: Norm, up: Linear, down: Linear
    }

    public let path: String
    public let width: Int, heads: Int
    /// Blocks in the file, and those kept.
    public let totalLayers: Int
    public var layers: Int { blocks.count }
    /// The longest input the position table allows, in output frames (1500 = 30 s).
    public let maxFrames: Int
    let conv1: Linear, conv2: Linear  // weights [out][in * 3], as im2col multiplies them
    let positions: [Float]  // [maxFrames][width]
    let blocks: [Block]
    let finalNorm: Norm

    /// The blocks `model` holds (0 for a model without encoder blocks).
    public static func layerCount(in model: CTranslate2Model) -> Int {
        (0...).first { model.shape("encoder/layer_\($0)/ffn/layer_norm/gamma") == nil }!
    }

    /// Reads the encoder of `model` (a Whisper CTranslate2 model), keeping its first `layers` blocks (all when nil).
    public init(model: CTranslate2Model, layers: Int? = nil) throws {
        openblas_set_num_threads(1)
        path = model.path
        guard model.spec == "WhisperSpec", let d = model.shape("encoder/conv1/weight")?.first,
              let heads = model.integer("encoder/num_heads"), heads > 0, d % heads == 0 else {
            throw ModelError.mismatch(model.path, reason: "not a Whisper model (spec \(model.spec))")
        }
        width = d
        self.heads = heads
        totalLayers = Self.layerCount(in: model)
        if let layers, !(layers >= 1 && layers <= totalLayers) {
            throw ModelError.mismatch(model.path, reason: "the encoder has \(totalLayers) layers, \(layers) asked for")
        }
        func linear(_ name: String, _ outputs: Int, _ inputs: Int, kernel: Int = 1) throws -> Linear {
            let shape = kernel == 1 ? [outputs, inputs] : [outputs, inputs, kernel]
            return Linear(inputs: inputs * kernel, outputs: outputs, weight: try model.floats("\(name)/weight", shape: shape),
                          bias: try model.floats("\(name)/bias", shape: [outputs]))
        }
        func norm(_ name: String) throws -> Norm {
            Norm(gamma: try model.floats("\(name)/gamma", shape: [d]), beta: try model.floats("\(name)/beta", shape: [d]))
        }
        conv1 = try linear("encoder/conv1", d, 80, kernel: 3)
        conv2 = try linear("encoder/conv2", d, d, kernel: 3)
        guard let table = model.shape("encoder/position_encodings/encodings"), table.count == 2, table[1] == d else {
            throw ModelError.mismatch(model.path, reason: "no position table of width \(d)")
        }
        maxFrames = table[0]
        positions = try model.floats("encoder/position_encodings/encodings", shape: table)
        blocks = try (0..<(layers ?? totalLayers)).map { i in
            let p = "encoder/layer_\(i)"
            return Block(attentionNorm: try norm("\(p)/self_attention/layer_norm"),
                         qkv: try linear("\(p)/self_attention/linear_0", 3 * d, d),
                         attentionOut: try linear("\(p)/self_attention/linear_1", d, d),
                         feedForwardNorm: try norm("\(p)/ffn/layer_norm"),
                         up: try linear("\(p)/ffn/linear_0", 4 * d, d), down: try linear("\(p)/ffn/linear_1", d, 4 * d))
        }
        finalNorm = try norm("encoder/layer_norm")
    }
}

/// Runs the encoder on one log-mel input at a time (WhisperLogMel's band-major layout): every
/// product is one sgemm, activations time-major ([frame][width]).
/// Threading: not thread-safe (it owns scratch buffers); use one per thread over shared weights.
public final class WhisperEncoder {
    public let weights: WhisperEncoderWeights
    private var x: [Float] = [], y: [Float] = [], wide: [Float] = [], columns: [Float] = [], scores: [Float] = []

    public init(weights: WhisperEncoderWeights) { self.weights = weights }

    /// Output frames of an input of `melFrames` frames (the stride-2 convolution halves it).
    public static func outputFrames(melFrames t: Int) -> Int { (t - 1) / 2 + 1 }

    /// Calls `body` with each hidden state of `mel` ([80][frames]): the input to block 0, each kept
    /// block's output, and, when every block is kept, the final layer norm of the last; each is
    /// [outputFrames][width], valid only during the call.
    public func forEachState(mel: UnsafeBufferPointer<Float>, frames t: Int, _ body: (UnsafeBufferPointer<Float>) -> Void) {
        let w = weights, d = w.width, n = Self.outputFrames(melFrames: t)
        precondition(mel.count == 80 * t && t >= 1 && n <= w.maxFrames, "a Whisper input is [80][1...\(2 * w.maxFrames)]")
        // conv1 ([d][t]) then conv2 ([d][n]), each an im2col and one sgemm.
        convolve(w.conv1, input: mel, channels: 80, length: t, stride: 1, outputLength: t, into: &y)
        gelu(&y)
        y.withUnsafeBufferPointer { convolve(w.conv2, input: $0, channels: d, length: t, stride: 2, outputLength: n, into: &wide) }
        gelu(&wide)
        resize(&x, n * d)
        for f in 0..<n { for c in 0..<d { x[f * d + c] = wide[c * n + f] + w.positions[f * d + c] } }
        x.withUnsafeBufferPointer(body)
        for block in w.blocks {
            attention(block, frames: n)
            feedForward(block, frames: n)
            x.withUnsafeBufferPointer(body)
        }
        if w.layers == w.totalLayers {
            layerNorm(w.finalNorm, x, into: &y, frames: n)
            y.withUnsafeBufferPointer(body)
        }
    }

    /// Each hidden state's mean and (population) standard deviation over its frames: [state][2 * width].
    public func pooledStates(mel: UnsafeBufferPointer<Float>, frames t: Int) -> [[Float]] {
        var out: [[Float]] = []
        let d = weights.width, n = Self.outputFrames(melFrames: t)
        forEachState(mel: mel, frames: t) { state in
            var pooled = [Float](repeating: 0, count: 2 * d)
            for f in 0..<n { for c in 0..<d { pooled[c] += state[f * d + c] } }
            for c in 0..<d { pooled[c] /= Float(n) }
            for f in 0..<n { for c in 0..<d { let e = state[f * d + c] - pooled[c]; pooled[d + c] += e * e } }
            for c in 0..<d { pooled[d + c] = (pooled[d + c] / Float(n)).squareRoot() }
            out.append(pooled)
        }
        return out
    }

    private func attention(_ block: WhisperEncoderWeights.Block, frames n: Int) {
        let d = weights.width, h = weights.heads, dh = d / h
        layerNorm(block.attentionNorm, x, into: &y, frames: n)
        y.withUnsafeBufferPointer { multiply($0, block.qkv, frames: n, into: &wide) }
        resize(&scores, n * n)
        resize(&y, n * d)
        let scale = 1 / Float(dh).squareRoot()
        wide.withUnsafeBufferPointer { qkv in
            scores.withUnsafeMutableBufferPointer { s in
                y.withUnsafeMutableBufferPointer { out in
                    for head in 0..<h {
                        let q = qkv.baseAddress! + head * dh, k = q + d, v = q + 2 * d
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(dh), scale,
                                    q, Int32(3 * d), k, Int32(3 * d), 0, s.baseAddress, Int32(n))
                        for r in 0..<n { softmaxRow(s.baseAddress! + r * n, count: n) }
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(dh), Int32(n), 1,
                                    s.baseAddress, Int32(n), v, Int32(3 * d), 0, out.baseAddress! + head * dh, Int32(d))
                    }
                }
            }
        }
        y.withUnsafeBufferPointer { multiply($0, block.attentionOut, frames: n, into: &wide) }
        for i in 0..<(n * d) { x[i] += wide[i] }
    }

    private func feedForward(_ block: WhisperEncoderWeights.Block, frames n: Int) {
        layerNorm(block.feedForwardNorm, x, into: &y, frames: n)
        y.withUnsafeBufferPointer { multiply($0, block.up, frames: n, into: &wide) }
        gelu(&wide)
        wide.withUnsafeBufferPointer { multiply($0, block.down, frames: n, into: &y) }
        for i in 0..<(n * weights.width) { x[i] += y[i] }
    }

    /// out[frames][outputs] = input[frames][inputs] · weightᵀ + bias.
    private func multiply(_ input: UnsafeBufferPointer<Float>, _ layer: WhisperEncoderWeights.Linear, frames n: Int, into out: inout [Float]) {
        resize(&out, n * layer.outputs)
        out.withUnsafeMutableBufferPointer { o in
            for f in 0..<n { (o.baseAddress! + f * layer.outputs).update(from: layer.bias, count: layer.outputs) }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(layer.outputs), Int32(layer.inputs), 1,
                        input.baseAddress, Int32(layer.inputs), layer.weight, Int32(layer.inputs), 1, o.baseAddress, Int32(layer.outputs))
        }
    }

    /// A kernel-3, padding-1 convolution of input [channels][length]: out [outputs][outputLength].
    private func convolve(_ conv: WhisperEncoderWeights.Linear, input: UnsafeBufferPointer<Float>, channels: Int,
                          length: Int, stride: Int, outputLength m: Int, into out: inout [Float]) {
        resize(&columns, channels * 3 * m)
        for c in 0..<channels {
            for k in 0..<3 {
                let row = (c * 3 + k) * m
                for t in 0..<m {
                    let s = t * stride + k - 1
                    columns[row + t] = s >= 0 && s < length ? input[c * length + s] : 0
                }
            }
        }
        resize(&out, conv.outputs * m)
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<conv.outputs { (o.baseAddress! + r * m).update(repeating: conv.bias[r], count: m) }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(conv.outputs), Int32(m), Int32(channels * 3), 1,
                        conv.weight, Int32(channels * 3), columns, Int32(m), 1, o.baseAddress, Int32(m))
        }
    }

    private func layerNorm(_ norm: WhisperEncoderWeights.Norm, _ input: [Float], into out: inout [Float], frames n: Int) {
        let d = weights.width
        resize(&out, n * d)
        for f in 0..<n {
            var mean: Float = 0, variance: Float = 0
            for c in 0..<d { mean += input[f * d + c] }
            mean /= Float(d)
            for c in 0..<d { let e = input[f * d + c] - mean; variance += e * e }
            let scale = 1 / (variance / Float(d) + 1e-5).squareRoot()
            for c in 0..<d { out[f * d + c] = (input[f * d + c] - mean) * scale * norm.gamma[c] + norm.beta[c] }
        }
    }

    private func softmaxRow(_ row: UnsafeMutablePointer<Float>, count: Int) {
        var peak = -Float.infinity
        for i in 0..<count { peak = max(peak, row[i]) }
        var sum: Float = 0
        for i in 0..<count { row[i] = fastExp(row[i] - peak) }  // apart from the sum, so it vectorises
        for i in 0..<count { sum += row[i] }
        let scale = 1 / sum
        for i in 0..<count { row[i] *= scale }
    }

    /// The exact (erf) GELU, as Whisper was trained with; erf without a libm call, so the loop vectorises
    /// (libm's erff was an eighth of the encoder's time).
    private func gelu(_ values: inout [Float]) {
        values.withUnsafeMutableBufferPointer { v in
            for i in v.indices { v[i] = 0.5 * v[i] * (1 + fastErf(v[i] * 0.70710678)) }
        }
    }

    private func resize(_ buffer: inout [Float], _ count: Int) {
        if buffer.count != count { buffer = [Float](repeating: 0, count: count) }
    }
}

/// erf to within 5e-7: Eigen's rational approximation (`generic_fast_erf_float`), x clamped to ±4.
@inline(__always) func fastErf(_ x: Float) -> Float {
    let x = min(max(x, -4), 4), x2 = x * x
    var p: Float = -2.72614225801306e-10
    p = p * x2 + 2.77068142495902e-08
    p = p * x2 - 2.10102402082508e-06
    p = p * x2 - 5.69250639462346e-05
    p = p * x2 - 7.34990630326855e-04
    p = p * x2 - 2.95459980854025e-03
    p = p * x2 - 1.60960333262415e-02
    var q: Float = -1.45660718464996e-05
    q = q * x2 - 2.13374055278905e-04
    q = q * x2 - 1.68282697438203e-03
    q = q * x2 - 7.37332916720468e-03
    q = q * x2 - 1.42647390514189e-02
    return x * p / q
}

/// exp for x <= 0 to about 1 ulp (Cephes' expf: x = n ln 2 + r, a degree-5 polynomial in r, n into
/// the exponent bits), without a libm call so the softmax loop vectorises; below -87 it is e^-87
/// (1.6e-38, just above the smallest normal float), never a denormal.
@inline(__always) func fastExp(_ x: Float) -> Float {
    let x = max(x, -87)
    // Rounded by adding 1.5 * 2^23, which leaves n in the low bits: unlike `rounded()` (a libm call) and
    // `Int32(_:)` (a trap on overflow), it lets the softmax loop vectorise.
    let shifted = x * 1.44269504 + 12_582_912
    let n = shifted - 12_582_912
    let r = x - n * 0.693359375 + n * 2.12194440e-4
    var p: Float = 1.9875691500e-4
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    return (p * r * r + r + 1) * Float(bitPattern: (shifted.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)
}

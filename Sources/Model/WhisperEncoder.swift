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

/// Runs the encoder on a batch of equal-length log-mel inputs (WhisperLogMel's band-major layout):
/// activations time-major ([window][frame][width]), so each linear layer is one sgemm over every
/// window's frames (the weights, 80 MB that no cache holds, are read once per batch, not per window),
/// and each residual is added by its sgemm; attention runs window by window.
/// Threading: not thread-safe (it owns scratch buffers); use one per thread over shared weights.
public final class WhisperEncoder {
    public let weights: WhisperEncoderWeights
    // Grow-only: a stream of equal batches allocates nothing after the first (a resized array was a
    // malloc and a zero-fill of up to 1.2 MB several times per block).
    private var x = ScratchBuffer(), y = ScratchBuffer(), wide = ScratchBuffer(), columns = ScratchBuffer(), scores = ScratchBuffer()

    public init(weights: WhisperEncoderWeights) { self.weights = weights }

    /// Output frames of an input of `melFrames` frames (the stride-2 convolution halves it).
    public static func outputFrames(melFrames t: Int) -> Int { (t - 1) / 2 + 1 }

    /// Calls `body` with each hidden state of `mel`, `windows` inputs of [80][frames] back to back:
    /// the input to block 0, each kept block's output, and, when every block is kept, the final layer
    /// norm of the last; each is [windows][outputFrames][width], valid only during the call.
    public func forEachState(mel: UnsafeBufferPointer<Float>, windows b: Int = 1, frames t: Int,
                             _ body: (UnsafeBufferPointer<Float>) -> Void) {
        let w = weights, d = w.width, n = Self.outputFrames(melFrames: t), rows = b * n
        precondition(b >= 1 && mel.count == b * 80 * t && t >= 1 && n <= w.maxFrames,
                     "a Whisper input is windows of [80][1...\(2 * w.maxFrames)]")
        // Sized once per call, before any pointer is taken: a later growth would move the buffer.
        let x = self.x.reserve(rows * d), y = self.y.reserve(max(d * t, rows * d)), wide = self.wide.reserve(4 * d * rows)
        let columns = self.columns.reserve(max(80 * t, d * n) * 3), scores = self.scores.reserve(n * n)
        w.positions.withUnsafeBufferPointer { positions in
            for window in 0..<b {
                // conv1 ([d][t]) then conv2 ([d][n]), each an im2col and one sgemm; then to time-major.
                convolve(w.conv1, input: mel.baseAddress! + window * 80 * t, channels: 80, length: t, stride: 1, outputLength: t,
                         columns: columns, into: y)
                gelu(y, count: d * t)
                convolve(w.conv2, input: y, channels: d, length: t, stride: 2, outputLength: n, columns: columns, into: wide)
                gelu(wide, count: d * n)
                let frames = x + window * n * d
                for f in 0..<n { for c in 0..<d { frames[f * d + c] = wide[c * n + f] + positions[f * d + c] } }
            }
        }
        let state = UnsafeBufferPointer(start: x, count: rows * d)
        body(state)
        for block in w.blocks {
            attention(block, windows: b, frames: n, x: x, y: y, wide: wide, scores: scores)
            // Feed-forward: x += down(GELU(up(norm(x)))).
            layerNorm(block.feedForwardNorm, x, into: y, rows: rows)
            multiply(y, block.up, rows: rows, into: wide)
            gelu(wide, count: rows * block.up.outputs)
            multiply(wide, block.down, rows: rows, into: x, accumulating: true)
            body(state)
        }
        if w.layers == w.totalLayers {
            layerNorm(w.finalNorm, x, into: y, rows: rows)
            body(UnsafeBufferPointer(start: y, count: rows * d))
        }
    }

    /// Each hidden state's mean and (population) standard deviation over its frames, for each of
    /// `windows` inputs: [window][state][2 * width].
    public func pooledStates(mel: UnsafeBufferPointer<Float>, windows b: Int, frames t: Int) -> [[[Float]]] {
        var out = [[[Float]]](repeating: [], count: b)
        let d = weights.width, n = Self.outputFrames(melFrames: t)
        forEachState(mel: mel, windows: b, frames: t) { state in
            for window in 0..<b {
                var pooled = [Float](repeating: 0, count: 2 * d)
                pooled.withUnsafeMutableBufferPointer { p in
                    let mean = p.baseAddress!, std = mean + d, s = state.baseAddress! + window * n * d
                    for f in 0..<n { laneAdd(s + f * d, into: mean, count: d) }
                    for c in 0..<d { mean[c] /= Float(n) }
                    // Two passes, not a sum of squares: layer 0's near-constant channels would cancel to noise.
                    for f in 0..<n { laneAddSquaredDeviations(s + f * d, from: mean, into: std, count: d) }
                    for c in 0..<d { std[c] = (std[c] / Float(n)).squareRoot() }
                }
                out[window].append(pooled)
            }
        }
        return out
    }

    /// `pooledStates` of one input: [state][2 * width].
    public func pooledStates(mel: UnsafeBufferPointer<Float>, frames t: Int) -> [[Float]] {
        pooledStates(mel: mel, windows: 1, frames: t)[0]
    }

    /// x += attentionOut(self-attention(norm(x))), each window attending to its own frames; `y`,
    /// `wide` and `scores` are scratch.
    private func attention(_ block: WhisperEncoderWeights.Block, windows b: Int, frames n: Int, x: UnsafeMutablePointer<Float>,
                           y: UnsafeMutablePointer<Float>, wide: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>) {
        let d = weights.width, h = weights.heads, dh = d / h
        layerNorm(block.attentionNorm, x, into: y, rows: b * n)
        multiply(y, block.qkv, rows: b * n, into: wide)
        let scale = 1 / Float(dh).squareRoot()
        for window in 0..<b {
            let qkv = wide + window * n * 3 * d, out = y + window * n * d
            for head in 0..<h {
                let q = qkv + head * dh, k = q + d, v = q + 2 * d
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(dh), scale,
                            q, Int32(3 * d), k, Int32(3 * d), 0, scores, Int32(n))
                for r in 0..<n { softmaxRow(scores + r * n, count: n) }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(dh), Int32(n), 1,
                            scores, Int32(n), v, Int32(3 * d), 0, out + head * dh, Int32(d))
            }
        }
        multiply(y, block.attentionOut, rows: b * n, into: x, accumulating: true)
    }

    /// out[rows][outputs] = input[rows][inputs] · weightᵀ + bias, or, `accumulating`, out += that
    /// (a residual connection added by the sgemm itself, with no pass of its own).
    private func multiply(_ input: UnsafePointer<Float>, _ layer: WhisperEncoderWeights.Linear, rows n: Int,
                          into out: UnsafeMutablePointer<Float>, accumulating: Bool = false) {
        let m = layer.outputs
        layer.bias.withUnsafeBufferPointer { bias in
            for f in 0..<n {
                let row = out + f * m
                if accumulating { for o in 0..<m { row[o] += bias[o] } } else { row.update(from: bias.baseAddress!, count: m) }
            }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(m), Int32(layer.inputs), 1,
                    input, Int32(layer.inputs), layer.weight, Int32(layer.inputs), 1, out, Int32(m))
    }

    /// A kernel-3, padding-1 convolution of input [channels][length]: out [outputs][outputLength].
    private func convolve(_ conv: WhisperEncoderWeights.Linear, input: UnsafePointer<Float>, channels: Int, length: Int,
                          stride: Int, outputLength m: Int, columns: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
        for c in 0..<channels {
            for k in 0..<3 {
                let row = columns + (c * 3 + k) * m, source = input + c * length
                for t in 0..<m {
                    let s = t * stride + k - 1
                    row[t] = s >= 0 && s < length ? source[s] : 0
                }
            }
        }
        for r in 0..<conv.outputs { (out + r * m).update(repeating: conv.bias[r], count: m) }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(conv.outputs), Int32(m), Int32(channels * 3), 1,
                    conv.weight, Int32(channels * 3), columns, Int32(m), 1, out, Int32(m))
    }

    private func layerNorm(_ norm: WhisperEncoderWeights.Norm, _ input: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, rows n: Int) {
        let d = weights.width
        norm.gamma.withUnsafeBufferPointer { gamma in
            norm.beta.withUnsafeBufferPointer { beta in
                for f in 0..<n {
                    let row = input + f * d, normed = out + f * d
                    let mean = laneSum(row, count: d) / Float(d)
                    let scale = 1 / (laneSquaredDeviations(row, count: d, from: mean) / Float(d) + 1e-5).squareRoot()
                    for c in 0..<d { normed[c] = (row[c] - mean) * scale * gamma[c] + beta[c] }
                }
            }
        }
    }

    private func softmaxRow(_ row: UnsafeMutablePointer<Float>, count: Int) {
        let peak = laneMax(row, count: count)
        for i in 0..<count { row[i] = fastExp(row[i] - peak) }  // apart from the sum, so it vectorises
        let scale = 1 / laneSum(row, count: count)
        for i in 0..<count { row[i] *= scale }
    }

    /// The exact (erf) GELU, as Whisper was trained with; erf without a libm call, so the loop vectorises
    /// (libm's erff was an eighth of the encoder's time).
    private func gelu(_ values: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { values[i] = 0.5 * values[i] * (1 + fastErf(values[i] * 0.70710678)) }
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

/// A grow-only float buffer: it keeps the largest size asked for, so equal requests allocate nothing.
/// Threading: owned by one `WhisperEncoder`.
struct ScratchBuffer: ~Copyable {
    private var base = UnsafeMutablePointer<Float>.allocate(capacity: 1)
    private var capacity = 1

    /// At least `count` floats (contents undefined); a pointer from an earlier call is invalid after a growth.
    mutating func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            base.deallocate()
            base = .allocate(capacity: count)
            capacity = count
        }
        return base
    }

    deinit { base.deallocate() }
}

// Reductions sixteen lanes at a time: a plain loop's sum keeps its order, so the compiler may not vectorise it.

@inline(__always) private func lanes(_ p: UnsafePointer<Float>, _ i: Int) -> SIMD16<Float> {
    UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
}

/// p[0] + … + p[count - 1].
@inline(__always) func laneSum(_ p: UnsafePointer<Float>, count: Int) -> Float {
    var acc = SIMD16<Float>(), i = 0
    while i + 16 <= count { acc += lanes(p, i); i += 16 }
    var sum = acc.sum()
    while i < count { sum += p[i]; i += 1 }
    return sum
}

/// Σ (p[i] - mean)².
@inline(__always) func laneSquaredDeviations(_ p: UnsafePointer<Float>, count: Int, from mean: Float) -> Float {
    var acc = SIMD16<Float>(), i = 0
    while i + 16 <= count { let e = lanes(p, i) - mean; acc += e * e; i += 16 }
    var sum = acc.sum()
    while i < count { let e = p[i] - mean; sum += e * e; i += 1 }
    return sum
}

/// acc[i] += p[i] for i < count (the plain loop's index arithmetic carried overflow checks that kept it scalar).
@inline(__always) func laneAdd(_ p: UnsafePointer<Float>, into acc: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 16 <= count {
        UnsafeMutableRawPointer(acc + i).storeBytes(of: lanes(acc, i) + lanes(p, i), as: SIMD16<Float>.self)
        i += 16
    }
    while i < count { acc[i] += p[i]; i += 1 }
}

/// acc[i] += (p[i] - mean[i])² for i < count.
@inline(__always) func laneAddSquaredDeviations(_ p: UnsafePointer<Float>, from mean: UnsafePointer<Float>,
                                                into acc: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    while i + 16 <= count {
        let e = lanes(p, i) - lanes(mean, i)
        UnsafeMutableRawPointer(acc + i).storeBytes(of: lanes(acc, i) + e * e, as: SIMD16<Float>.self)
        i += 16
    }
    while i < count { let e = p[i] - mean[i]; acc[i] += e * e; i += 1 }
}

/// The largest of p[0..<count] (count ≥ 1). Eight lanes by `replace(with:where:)`: SIMD's own
/// `pointwiseMax` and `max()` go through memory lane by lane (40x slower, measured).
@inline(__always) func laneMax(_ p: UnsafePointer<Float>, count: Int) -> Float {
    var acc = SIMD8<Float>(repeating: -.infinity), i = 0
    while i + 8 <= count {
        let v = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
        acc.replace(with: v, where: v .> acc)
        i += 8
    }
    var peak = -Float.infinity
    for lane in 0..<8 where acc[lane] > peak { peak = acc[lane] }
    while i < count { if p[i] > peak { peak = p[i] }; i += 1 }
    return peak
}

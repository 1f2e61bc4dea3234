import COpenBLAS
import Features
import Foundation

/// The trained network's weights, with each batch norm folded into the convolution before it.
/// Threading: immutable after init; one instance serves any number of `EmotionClassifier`s.
/// Unchecked Sendable: every property is a `let` of value types, fixed at init.
public final class ModelWeights: @unchecked Sendable {
    struct Conv {
        let inChannels: Int, outChannels: Int
        /// [out][in * 9], batch norm folded in.
        let weight: [Float]
        let bias: [Float]
    }

    struct Dense {
        let inputs: Int, outputs: Int
        let weight: [Float]  // [outputs][inputs]
        let bias: [Float]
    }

    public let card: ModelCard
    /// The safetensors file the weights came from.
    public let file: String
    /// The CNN's blocks; empty for an encoder model.
    let convs: [Conv]
    /// The speech encoder under the heads, when the card names one.
    public let encoder: WhisperEncoderWeights?
    let emotion: Dense
    let sex: Dense

    /// Loads the card at `cardURL` and the safetensors file it names (and its encoder).
    public convenience init(cardURL: URL) throws {
        let card = try ModelCard.load(from: cardURL)
        let weightsURL = cardURL.deletingLastPathComponent().appendingPathComponent(card.weights)
        let encoder = try card.encoder.map { spec in
            let url = URL(fileURLWithPath: spec.file, relativeTo: cardURL.deletingLastPathComponent())
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw ModelError.unreadable(url.path, reason: "the speech encoder is not installed (./setup.sh installs it; --model Models/emotion-cnn.json needs none)")
            }
            // A head on state k (k >= 1) needs blocks 1...k; the last state is the final norm after every block.
            let model = try CTranslate2Model(path: url.path)
            let total = WhisperEncoderWeights.layerCount(in: model)
            let encoder = try WhisperEncoderWeights(model: model, layers: max(1, min(spec.states - 1, total)))
            guard spec.states <= total + 2 else {
                throw ModelError.mismatch(url.path, reason: "the card reads \(spec.states) states, the encoder has \(total + 2)")
            }
            return encoder
        }
        try self.init(card: card, tensors: SafeTensors(contentsOf: weightsURL), file: weightsURL.path, encoder: encoder)
    }

    /// `encoder` must be given exactly when the card names one.
    public init(card: ModelCard, tensors: SafeTensors, file: String, encoder: WhisperEncoderWeights? = nil) throws {
        precondition((card.encoder == nil) == (encoder == nil), "an encoder exactly when the card names one")
        // The CLI parallelises across files and windows itself; OpenBLAS's own threads would only contend.
        openblas_set_num_threads(1)
        self.card = card
        self.file = file
        self.encoder = encoder
        let known: Set<String>
        if let encoder, let spec = card.encoder {
            convs = []
            // One linear layer per head over every state's pooled [mean; std]: train_head.py's export folds
            // the heads' standardisation, layer weights and ensemble members into it.
            let inputs = spec.states * 2 * encoder.width
            emotion = try Self.dense(tensors, "emotion", outputs: card.labels.count, inputs: inputs, file: file)
            sex = try Self.dense(tensors, "sex", outputs: card.sexLabels.count, inputs: inputs, file: file)
            known = ["emotion.weight", "emotion.bias", "sex.weight", "sex.bias"]
        } else {
            (convs, emotion, sex) = try Self.cnn(card.architecture!, tensors, file: file, card: card)
            known = Set(convs.indices.flatMap { b in
                ["features.\(4 * b).weight"] + ["weight", "bias", "running_mean", "running_var"].map { "features.\(4 * b + 1).\($0)" }
            } + ["emotion.weight", "emotion.bias", "sex.weight", "sex.bias"])
        }
        if let extra = tensors.tensors.keys.sorted().first(where: { !known.contains($0) }) {
            throw ModelError.mismatch(file, reason: "unexpected tensor '\(extra)': the card's architecture differs from the weights")
        }
        // A NaN weight makes every probability NaN: a label without probabilities.
        if let bad = tensors.tensors.keys.sorted().first(where: { !tensors.tensors[$0]!.values.allSatisfy(\.isFinite) }) {
            throw ModelError.corrupt(file, reason: "tensor '\(bad)' holds NaN or infinite values")
        }
    }

    private static func cnn(_ architecture: ModelCard.Architecture, _ tensors: SafeTensors, file: String,
                            card: ModelCard) throws -> ([Conv], Dense, Dense) {
        var convs: [Conv] = []
        var inChannels = 1
        for (block, out) in architecture.channels.enumerated() {
            // PyTorch's Sequential numbers each block's layers conv, bn, relu, pool: 4 per block.
            let conv = "features.\(4 * block)", bn = "features.\(4 * block + 1)"
            var weight = try tensors.tensor("\(conv).weight", shape: [out, inChannels, 3, 3], file: file)
            let gamma = try tensors.tensor("\(bn).weight", shape: [out], file: file)
            let beta = try tensors.tensor("\(bn).bias", shape: [out], file: file)
            let mean = try tensors.tensor("\(bn).running_mean", shape: [out], file: file)
            let variance = try tensors.tensor("\(bn).running_var", shape: [out], file: file)
            var bias = [Float](repeating: 0, count: out)
            let k = inChannels * 9
            for o in 0..<out {
                let scale = gamma[o] / (variance[o] + Float(architecture.batchNormEpsilon)).squareRoot()
                for i in 0..<k { weight[o * k + i] *= scale }
                bias[o] = beta[o] - mean[o] * scale
            }
            convs.append(Conv(inChannels: inChannels, outChannels: out, weight: weight, bias: bias))
            inChannels = out
        }
        return (convs, try dense(tensors, "emotion", outputs: card.labels.count, inputs: 2 * inChannels, file: file),
                try dense(tensors, "sex", outputs: card.sexLabels.count, inputs: 2 * inChannels + architecture.sexPitchInputs, file: file))
    }

    /// A linear layer `name` ("emotion" or "sex") of `outputs` × `inputs`.
    private static func dense(_ tensors: SafeTensors, _ name: String, outputs: Int, inputs: Int, file: String) throws -> Dense {
        Dense(inputs: inputs, outputs: outputs,
              weight: try tensors.tensor("\(name).weight", shape: [outputs, inputs], file: file),
              bias: try tensors.tensor("\(name).bias", shape: [outputs], file: file))
    }
}

extension ModelWeights {
    /// Multiply-adds of one window through the convolutions, or the encoder's matrix products (the
    /// heads add under 0.01 %): what `bench`'s GMAC/s counts.
    public var multiplyAddsPerWindow: Int {
        if let encoder {
            let d = encoder.width, t = WhisperLogMel.frameCount(samples: card.windowSamples)
            let n = WhisperEncoder.outputFrames(melFrames: t)
            // Two convolutions; per block QKV, output, the 4d feed-forward and the two attention products.
            return d * WhisperLogMel.melBands * 3 * t + d * d * 3 * n + encoder.layers * (12 * n * d * d + 2 * n * n * d)
        }
        var (height, width, total) = (card.features.melBands, card.windowFrames, 0)
        for conv in convs {
            total += conv.outChannels * conv.inChannels * 9 * height * width
            (height, width) = (height / 2, width / 2)
        }
        return total
    }
}

/// One window's output: logits and probabilities for emotion and speaker sex.
public struct Prediction: Sendable, Equatable {
    public var emotionLogits: [Float]
    public var sexLogits: [Float]
    public var emotion: [Float] { softmax(emotionLogits) }
    public var sex: [Float] { softmax(sexLogits) }
}

public func softmax(_ x: [Float]) -> [Float] {
    let m = x.max() ?? 0
    let e = x.map { exp($0 - m) }
    let s = e.reduce(0, +)
    return e.map { $0 / s }
}

/// Runs the CNN on batches of log-mel windows: z-normalisation, then per block an im2col + sgemm
/// convolution with folded batch norm, ReLU and 2x2 max-pool; then mean over frequency, mean and
/// max over time, and the two linear heads. Activations are laid out [channel][window][freq][time],
/// so a whole batch is one sgemm per layer.
/// Threading: not thread-safe (it owns scratch buffers); use one per thread over shared `ModelWeights`.
public final class EmotionClassifier {
    public let weights: ModelWeights
    private var activations: [Float] = []
    private var columns: [Float] = []
    private var output: [Float] = []
    /// An encoder model's front end and encoder (with their scratch), made on first use.
    private lazy var whisper = weights.encoder.map { (WhisperLogMel(), WhisperEncoder(weights: $0)) }
    private var mel: [Float] = [], windowMel: [Float] = []

    public init(weights: ModelWeights) { self.weights = weights }

    public var card: ModelCard { weights.card }

    /// Classifies `count` windows stored frame-major ([window][frame][mel], raw log-mel as
    /// `MelSpectrogram` produces them, `card.windowFrames` frames each). A speaker-normalised model
    /// takes one speaker mean per window (`card.features.melBands` values), subtracted from each frame.
    /// A model whose sex head hears pitch takes each window's `pitchStatistics` (FeatureStream).
    public func predict(frames: UnsafeBufferPointer<Float>, count: Int, speakerMeans: [[Float]] = [], pitch: [[Float]] = []) -> [Prediction] {
        let mels = card.features.melBands, time = card.windowFrames
        precondition(frames.count >= count * mels * time, "not enough frames for \(count) windows")
        precondition(speakerMeans.isEmpty || speakerMeans.count == count, "one speaker mean per window")
        let pitchInputs = card.sexPitchInputs
        precondition(weights.encoder == nil, "an encoder model reads samples")
        precondition(pitchInputs == 0 || (pitch.count == count && pitch.allSatisfy { $0.count == pitchInputs }),
                     "\(pitchInputs) pitch statistics per window")
        guard count > 0 else { return [] }
        prepareInput(frames, count: count, mels: mels, time: time, means: speakerMeans)
        var (height, width) = (mels, time)
        for conv in weights.convs {
            convolve(conv, batch: count, height: height, width: width)
            maxPool(channels: conv.outChannels * count, height: height, width: width)
            (height, width) = (height / 2, width / 2)
            addBiasAndReLU(conv, batch: count, plane: height * width)
        }
        let channels = weights.convs.last!.outChannels
        return (0..<count).map { b in
            var pooled = [Float](repeating: 0, count: 2 * channels)
            for c in 0..<channels {
                let plane = (c * count + b) * height * width
                var mean: Float = 0, peak = -Float.infinity
                for t in 0..<width {
                    var column: Float = 0
                    for f in 0..<height { column += activations[plane + f * width + t] }
                    column /= Float(height)
                    mean += column
                    peak = max(peak, column)
                }
                pooled[c] = mean / Float(width)
                pooled[channels + c] = peak
            }
            return Prediction(emotionLogits: apply(weights.emotion, pooled),
                              sexLogits: apply(weights.sex, pitchInputs == 0 ? pooled : pooled + pitch[b]))
        }
    }

    /// Windows per encoder pass: 600 frames per sgemm, where OpenBLAS's speed levels off (one core
    /// here: 70-98 GFLOP/s at 150 rows, 106-115 at 300-600, 88-107 at 1200) and its scratch stays near 8 MB.
    public static let encoderWindows = 4

    /// Classifies `count` windows of 16 kHz samples (`card.windowSamples` each, back to back) with an
    /// encoder model: Whisper's log-mel, the encoder's kept blocks over `encoderWindows` windows at a
    /// time, each state's mean and std over time, the folded heads.
    public func predict(samples: UnsafeBufferPointer<Float>, count: Int) -> [Prediction] {
        guard let (front, encoder) = whisper, let spec = card.encoder else { preconditionFailure("not an encoder model") }
        let w = card.windowSamples
        precondition(samples.count >= count * w, "not enough samples for \(count) windows")
        guard count > 0 else { return [] }
        mel.removeAll(keepingCapacity: true)
        for b in 0..<count {
            front.compute(UnsafeBufferPointer(rebasing: samples[(b * w)..<((b + 1) * w)]), into: &windowMel)
            mel += windowMel
        }
        let frames = windowMel.count / WhisperLogMel.melBands, size = WhisperLogMel.melBands * frames
        let pooled = mel.withUnsafeBufferPointer { all in
            stride(from: 0, to: count, by: Self.encoderWindows).flatMap { first in
                let n = min(Self.encoderWindows, count - first)
                return encoder.pooledStates(mel: UnsafeBufferPointer(rebasing: all[(first * size)..<((first + n) * size)]), windows: n, frames: frames)
            }
        }
        return pooled.map { states in
            let inputs = Array(states.prefix(spec.states).joined())
            return Prediction(emotionLogits: apply(weights.emotion, inputs), sexLogits: apply(weights.sex, inputs))
        }
    }

    /// Transposes each window to [mel][time], subtracts the speaker mean if given, and z-normalises
    /// it with one mean and one std.
    private func prepareInput(_ frames: UnsafeBufferPointer<Float>, count: Int, mels: Int, time: Int, means: [[Float]]) {
        let size = mels * time
        activations = [Float](repeating: 0, count: count * size)
        let noMean = [Float](repeating: 0, count: mels)
        activations.withUnsafeMutableBufferPointer { out in
            for b in 0..<count {
                let window = frames.baseAddress! + b * size, plane = out.baseAddress! + b * size
                let speaker = means.isEmpty ? noMean : means[b]
                for t in 0..<time {
                    for m in 0..<mels { plane[m * time + t] = window[t * mels + m] - speaker[m] }
                }
                var sum: Double = 0, squares: Double = 0
                for i in 0..<size { sum += Double(plane[i]); squares += Double(plane[i]) * Double(plane[i]) }
                let mean = Float(sum / Double(size))
                let std = Float(max((squares / Double(size) - Double(mean) * Double(mean)).squareRoot(), 1e-5))
                for i in 0..<size { plane[i] = (plane[i] - mean) / std }
            }
        }
    }

    /// 3x3 convolution with padding 1 over every plane (bias and ReLU follow the pool); result in `activations`.
    private func convolve(_ conv: ModelWeights.Conv, batch: Int, height: Int, width: Int) {
        let plane = height * width, n = batch * plane, k = conv.inChannels * 9
        if columns.count < k * n { columns = [Float](repeating: 0, count: k * n) }
        activations.withUnsafeBufferPointer { inputBuffer in
            columns.withUnsafeMutableBufferPointer { colsBuffer in
                let input = inputBuffer.baseAddress!, cols = colsBuffer.baseAddress!
                for c in 0..<conv.inChannels {
                    for dy in -1...1 {
                        for dx in -1...1 {
                            // Row (c, dy, dx) of the column matrix is every plane shifted by (dy, dx), zero outside.
                            let row = cols + (c * 9 + (dy + 1) * 3 + (dx + 1)) * n
                            let copy = width - abs(dx)
                            for b in 0..<batch {
                                let src = input + (c * batch + b) * plane, dst = row + b * plane
                                for y in 0..<height {
                                    let out = dst + y * width
                                    let sy = y + dy
                                    guard sy >= 0 && sy < height else {
                                        out.update(repeating: 0, count: width)
                                        continue
                                    }
                                    out.advanced(by: max(0, -dx)).update(from: src + sy * width + max(0, dx), count: copy)
                                    if dx == -1 { out[0] = 0 }
                                    if dx == 1 { out[width - 1] = 0 }
                                }
                            }
                        }
                    }
                }
            }
        }
        if output.count < conv.outChannels * n { output = [Float](repeating: 0, count: conv.outChannels * n) }
        conv.weight.withUnsafeBufferPointer { w in
            columns.withUnsafeBufferPointer { cols in
                output.withUnsafeMutableBufferPointer { out in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(conv.outChannels), Int32(n), Int32(k),
                                1, w.baseAddress, Int32(k), cols.baseAddress, Int32(n), 0, out.baseAddress, Int32(n))
                }
            }
        }
        swap(&activations, &output)
    }

    /// Bias and ReLU after the max-pool, on a quarter of the values: both are monotonic, and so is
    /// float rounding, so max(relu(x + b)) is exactly relu(max(x) + b).
    private func addBiasAndReLU(_ conv: ModelWeights.Conv, batch: Int, plane: Int) {
        let n = batch * plane
        activations.withUnsafeMutableBufferPointer { a in
            for o in 0..<conv.outChannels {
                let bias = conv.bias[o]
                for i in (o * n)..<((o + 1) * n) { a[i] = max(0, a[i] + bias) }
            }
        }
    }

    /// 2x2 max-pool with floor semantics (odd trailing rows/columns dropped), in place into `activations`.
    private func maxPool(channels: Int, height: Int, width: Int) {
        let (h2, w2) = (height / 2, width / 2)
        activations.withUnsafeMutableBufferPointer { a in
            for p in 0..<channels {
                let src = p * height * width, dst = p * h2 * w2
                for y in 0..<h2 {
                    for x in 0..<w2 {
                        let i = src + 2 * y * width + 2 * x
                        a[dst + y * w2 + x] = max(max(a[i], a[i + 1]), max(a[i + width], a[i + width + 1]))
                    }
                }
            }
        }
    }

    private func apply(_ dense: ModelWeights.Dense, _ x: [Float]) -> [Float] {
        (0..<dense.outputs).map { o in
            var sum = dense.bias[o]
            for i in 0..<dense.inputs { sum += dense.weight[o * dense.inputs + i] * x[i] }
            return sum
        }
    }
}

import ArgumentParser
import Capture
import Features
import Foundation
import Model
import Output
import RingBuffer
import Streaming

/// `--profile PATH` for the commands that analyse one speaker's voice.
struct ProfileOption: ParsableArguments {
    @Option(help: "Speaker profile from 'emotion-monitor calibrate' (default: online normalisation from the speech heard).")
    var profile: String?

    /// The profile when one is given (checked against the model before any audio is read), else online.
    func normalisation(for card: ModelCard) throws -> Normalisation {
        guard let profile else { return .online }
        do { return .profile(try SpeakerProfile.load(path: profile, for: card)) } catch let error as ProfileError {
            throw Failure(error.description)
        }
    }
}

struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tune the monitor to one voice: about ten seconds of normal speech make a speaker profile.",
        discussion: """
        From a microphone it shows a sentence to read in your normal voice, a level meter and the seconds \
        of speech heard, and stops at --seconds of speech. With --replay it uses the speech in the files. \
        Use the profile with 'analyze --profile' and 'listen --profile'.
        """)

    @Option(help: "Where to write the profile (replaced only by a complete new one).")
    var profile: String

    @OptionGroup var source: SourceOptions

    @Option(help: "Seconds of speech to collect from the microphone.")
    var seconds: Double = 10

    @Option(help: "Give up listening after this many seconds.")
    var timeout: Double = 60

    @OptionGroup var common: CommonOptions

    /// Fewer seconds of speech than this give a mean too noisy to help.
    static let minimumSpeech = 3.0

    func validate() throws {
        if !(seconds >= Self.minimumSpeech && seconds <= 600) { throw ValidationError("--seconds must be \(Int(Self.minimumSpeech))...600") }
        if !(timeout > 0 && timeout <= 86_400) { throw ValidationError("--timeout must be a number of seconds in (0, 86400]") }
    }

    func run() throws {
        let (config, weights) = try common.loadAnalysis(reading: source.replay, writing: [("--profile", profile)], forProfile: true)
        guard weights.card.speakerNormalisation != nil else {
            throw Failure("the model \(weights.card.name) is not speaker-normalised: a profile cannot help it (calibrate with --model Models/emotion-cnn-sn.json)")
        }
        let analyzer = ClipAnalyzer(classifier: EmotionClassifier(weights: weights), windows: config.windows, speech: config.speech)
        var mean = SpeakerMean(bands: weights.card.features.melBands)
        let origin = source.replay.isEmpty ? "device \(source.device ?? config.listen.device)" : source.replay.joined(separator: ", ")
        // Each recording is decoded once: for the mean now, for the speaker sex below.
        var streams: [(stream: FeatureStream, name: String)] = []
        if source.replay.isEmpty {
            streams = [(try listen(card: weights.card, config: config, into: &mean), origin)]
        } else {
            do { streams = try source.replay.map { (try analyzer.features(path: $0).0, $0) } } catch { throw Failure("\(error)") }
            for s in streams { mean.add(analyzer.speakerMean(of: s.stream)) }
        }
        let speech = Double(mean.frames) * weights.card.features.frameSeconds
        guard speech >= Self.minimumSpeech, var result = SpeakerProfile(speech: mean, features: weights.card.features, source: origin) else {
            throw Failure(String(format: "heard only %.1f s of speech; calibration needs at least %.0f s (check the microphone and speak closer)",
                                 speech, Self.minimumSpeech))
        }
        // Which voice the model hears through the new profile.
        let normalisation = Normalisation.profile(result)
        // A recording without speech among others adds nothing to the mean, nor to this.
        let heard = streams.compactMap { try? analyzer.analyze(stream: $0.stream, path: $0.name, normalisation: normalisation) }
        let sex = meanProbabilities(heard.map { $0.sex })
        let (label, confidence) = top(sex, weights.card.sexLabels)
        result.sex = SpeakerProfile.Sex(label: label, confidence: Double(confidence))
        do { try OutputFile.write(result.encoded(), to: profile) } catch { throw Failure("\(error)") }
        print("wrote \(profile) from \(String(format: "%.1f", speech)) s of speech (voice: \(label) \(percent(confidence)))")
        try finishOutput()
    }

    /// A phonetically rich passage in plain prose: read in a normal voice, it covers the speaker's range.
    static let passage = "When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow. "
        + "The rainbow is a division of white light into many beautiful colours."

    /// Captures from the microphone until `seconds` of speech, showing a level meter and progress.
    private func listen(card: ModelCard, config: Configuration, into mean: inout SpeakerMean) throws -> FeatureStream {
        let name = source.device ?? config.listen.device
        let capture: CaptureDevice
        do { capture = try CaptureDevice(name: name, preferredSampleRate: config.listen.sampleRate) } catch { throw Failure("\(error)") }
        let ring = SampleRing(capacity: Int(config.listen.ringSeconds * Double(capture.format.sampleRate)))
        let thread = CaptureThread(device: capture, ring: ring)
        let stream = try FeatureStream(for: card, inputRate: capture.format.sampleRate, detector: try config.speech.makeDetector())
        let gate = card.speakerNormalisation?.speechGate ?? config.speech
        let frameSeconds = card.features.frameSeconds
        let colour = StatusLine.colourAllowed()
        print("Read this aloud in your normal voice, and keep talking until the count reaches \(Int(seconds)) s:\n\n  \(Self.passage)\n")
        thread.start()
        defer {
            thread.stop()
            thread.waitUntilStopped()
            print("\r\u{1B}[K", terminator: "")
        }
        var buffer = [Float](repeating: 0, count: ring.capacity)
        var heardFrames = 0
        let started = Date()
        // Audio is taken in 20 ms steps so the count stops at --seconds even when a device delivers in bursts.
        let step = capture.format.sampleRate / 50
        var enough: Bool { Double(mean.frames) * frameSeconds >= seconds }
        while !enough && Date().timeIntervalSince(started) < timeout {
            usleep(50_000)
            if let failure = thread.failure { throw Failure(failure.description) }
            let n = buffer.withUnsafeMutableBufferPointer { ring.read(into: $0) }
            for start in stride(from: 0, to: n, by: step) where !enough {
                try stream.push(buffer[start..<min(n, start + step)])
                let upTo = card.features.frameCount(samples: stream.sampleCount)
                stream.accumulateSpeech(frames: heardFrames..<upTo, into: &mean, gate: gate)
                heardFrames = upTo
            }
            let recent = stream.energies.suffix(10)
            let dbfs = recent.isEmpty ? -120 : max(-120, 10 * log10(Double(recent.reduce(0, +)) / Double(recent.count) + 1e-12))
            let line = levelMeter(dbfs: dbfs, colour: colour).text
                + String(format: "   speech %.1f of %.0f s", Double(mean.frames) * frameSeconds, seconds)
            print("\r" + line + "\u{1B}[K", terminator: "")
            fflush(nil)
        }
        return stream
    }
}

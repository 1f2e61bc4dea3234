import ArgumentParser
import Capture
import Features
import Foundation
import Model
import Output
import Dispatch
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
            let heard: SpeakerMeanCollector
            do { heard = try listen(card: weights.card, config: config) } catch let error as CaptureError { throw Failure("\(error)") }
            (streams, mean) = ([(heard.stream, origin)], heard.mean)
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

    /// Listens to the microphone through the live pipeline until `seconds` of speech or the timeout,
    /// showing a level meter and progress.
    private func listen(card: ModelCard, config: Configuration) throws -> SpeakerMeanCollector {
        let (source, ring) = try openSource(device: source.device ?? config.listen.device, replay: [], reopen: false, settings: config.listen)
        let collector = try SpeakerMeanCollector(card: card, inputRate: source.sampleRate, speech: config.speech, seconds: seconds)
        let done = DispatchSemaphore(value: 0)
        var failure: String?
        var stopping = false
        var monitor: LiveMonitor<SpeakerMeanCollector>?
        let colour = StatusLine.colourAllowed()
        let target = seconds
        monitor = LiveMonitor(source: source, ring: ring, window: collector, queue: DispatchQueue(label: "emotion-monitor.calibration"),
                              onEvent: { progress in
            print("\r" + levelMeter(dbfs: progress.levelDbfs, colour: colour).text
                  + String(format: "   speech %.1f of %.0f s", progress.speechSeconds, target) + "\u{1B}[K", terminator: "")
            fflush(nil)
            if progress.complete && !stopping {
                stopping = true
                monitor?.stop()
            }
        }, onEnd: { failure = $0; done.signal() })
        print("Read this aloud in your normal voice, and keep talking until the count reaches \(Int(seconds)) s:\n\n  \(Self.passage)\n")
        monitor?.start()
        if done.wait(timeout: .now() + timeout) == .timedOut {
            monitor?.stop()
            done.wait()
        }
        monitor = nil
        print("\r\u{1B}[K", terminator: "")
        if let failure { throw Failure(failure) }
        return collector
    }
}

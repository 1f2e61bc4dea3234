import Evaluation
import Foundation
import XCTest

final class EvaluationTests: XCTestCase {
    func manifest(_ text: String, folder name: String = "mine") throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("evaluation-\(UUID().uuidString)/\(name)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent()) }
        let path = folder.appendingPathComponent(Manifest.fileName).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testAManifestGivesEachRowsClipInAnyColumnOrder() throws {
        let path = try manifest("\u{FEFF}emotion,Sex,file,speaker,note\r\nhappy,female,takes/a.wav,ann,\"loud, then soft\"\n,unknown,/abs/b.flac,,\n\nSAD,male,c.ogg,bob,\n",
                                folder: "MyTakes")
        let clips = try Manifest.read(path)
        let folder = (path as NSString).deletingLastPathComponent
        XCTAssertEqual(clips.map(\.path), [folder + "/takes/a.wav", "/abs/b.flac", folder + "/c.ogg"])
        XCTAssertEqual(clips.map(\.emotion), [2, nil, 3], "an empty emotion counts for sex only")
        XCTAssertEqual(clips.map(\.sex), [1, nil, 0])
        XCTAssertEqual(clips.map(\.speaker), ["ann", "/abs/b.flac", "bob"], "no speaker: the file is its own")
        XCTAssertEqual(Set(clips.map(\.corpus)), ["mytakes"], "the corpus is the folder")
    }

    func testAWrongRowIsAnErrorNamingItsLine() throws {
        let cases = [
            ("file,speaker,sex,emotion\na.wav,x,female,happy\nb.wav,x,female,joy\n", "line 3: emotion 'joy'"),
            ("file,speaker,sex,emotion\na.wav,x,woman,happy\n", "line 2: sex 'woman'"),
            ("file,speaker,sex,emotion\n\"a\nb.wav\",x,female,happy\nc.wav,x\n", "line 4: 2 fields"),
            ("file,speaker,emotion\na.wav,x,happy\n", "no 'sex' column"),
            ("", "empty manifest"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try Manifest.read(try manifest(text)), expected) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
                XCTAssertFalse("\(error)".contains("\n"), "\(error)")
            }
        }
    }

    func testQuotedFieldsHoldCommasQuotesAndLineBreaks() {
        let rows = Manifest.csvRows("a,\"b,\"\"c\"\"\",d\n\"e\nf\",g\r\nh")
        XCTAssertEqual(rows.map(\.fields), [["a", "b,\"c\"", "d"], ["e\nf", "g"], ["h"]])
        XCTAssertEqual(rows.map(\.line), [1, 2, 4])
    }

    func testCorpusNamesGiveEmotionSpeakerAndSex() {
        XCTAssertEqual(Corpus.ravdess.parse(URL(fileURLWithPath: "03-01-05-02-01-01-12.wav"))?.emotion, 4)
        XCTAssertEqual(Corpus.ravdess.parse(URL(fileURLWithPath: "03-01-05-02-01-01-12.wav"))?.sex, 1)
        XCTAssertNil(Corpus.ravdess.parse(URL(fileURLWithPath: "03-02-05-02-01-01-12.wav")), "song is another task")
        XCTAssertEqual(Corpus.tess.parse(URL(fileURLWithPath: "OAF_back_ps.wav"))?.emotion, 7)
        XCTAssertEqual(Corpus.savee.parse(URL(fileURLWithPath: "DC_sa03.wav"))?.emotion, 3)
        XCTAssertEqual(Corpus.urdu.parse(URL(fileURLWithPath: "Angry/SF1_F10_A010.wav"))?.sex, 1)
        XCTAssertNil(Corpus.urdu.parse(URL(fileURLWithPath: "Bored/SF1_F10_A010.wav")))
    }

    /// UAR is the mean of per-class recalls, so a rare class weighs as much as a common one; a clip
    /// without an answer is wrong.
    func testUnweightedAverageRecallWeighsClassesEqually() {
        var scores = Scores(labels: ["a", "b"])
        for _ in 0..<8 { scores.add(truth: 0, predicted: 0) }
        scores.add(truth: 1, predicted: 0)
        scores.add(truth: 1, predicted: nil, sexCorrect: false)
        scores.add(truth: nil, predicted: 1, sexCorrect: true)
        XCTAssertEqual(scores.accuracy, 0.8, accuracy: 1e-12)
        XCTAssertEqual(scores.unweightedAverageRecall, 0.5, accuracy: 1e-12)
        XCTAssertEqual(scores.sexAccuracy, 0.5)
        XCTAssertEqual(scores.total, 10, "the clip of unknown emotion counts for sex only")
    }

    func testAReportScoresOwnClassesAmongThoseTheCorpusHas() {
        var report = CorpusReport(corpus: "urdu", classes: Corpus.urdu.classes)
        let clip = LabelledClip(path: "Angry/SM1_F10_A010.wav", corpus: "urdu", emotion: 4, speaker: "SM1", sex: 0)
        // Calm (not an URDU class) is most probable; angry leads among URDU's four.
        report.add(clip, emotion: [0, 0.5, 0, 0, 0.3, 0.2, 0, 0], sex: [0.9, 0.1], sexed: true)
        XCTAssertEqual(report.eight.accuracy, 0)
        XCTAssertEqual(report.own.accuracy, 1)
        XCTAssertEqual(report.own.sexAccuracy, 1)
    }
}

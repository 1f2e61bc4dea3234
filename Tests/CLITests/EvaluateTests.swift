import Foundation
import XCTest

final class EvaluateTests: XCTestCase {
    func testReportsAccuracyUARAndConfusionForTheChosenActors() throws {
        let ravdess = try CLI.corpus("ravdess")
        let run = try CLI.run(["evaluate", ravdess.path, "--actors", "3", "--format", "json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = json(run.stdout)
        XCTAssertEqual(report["clips"] as? Int, 60)
        let confusion = report["confusion"] as! [[Int]]
        XCTAssertEqual(confusion.count, 8)
        XCTAssertEqual(confusion.joined().reduce(0, +), 60)
        // Actor 03 says each of the 7 non-neutral emotions 8 times and neutral 4 times.
        XCTAssertEqual(confusion.map { $0.reduce(0, +) }, [4, 8, 8, 8, 8, 8, 8, 8])
        let diagonal = (0..<8).map { confusion[$0][$0] }.reduce(0, +)
        XCTAssertEqual(report["accuracy"] as! Double, Double(diagonal) / 60, accuracy: 1e-4)
        XCTAssertNotNil(report["uar"])
        XCTAssertNotNil(report["sex_accuracy"])

        let text = try CLI.run(["evaluate", ravdess.path, "--actors", "3"])
        XCTAssertTrue(text.stdout.contains("accuracy"), text.stdout)
        XCTAssertTrue(text.stdout.contains("surprised"), text.stdout)
    }

    /// Each corpus's names give its emotions, speakers and sexes; its own classes are scored apart.
    func testOtherCorporaAreRecognisedAndScoredOverTheirOwnClasses() throws {
        let data = try CLI.corpus("tess").deletingLastPathComponent()
        for other in ["savee", "urdu"] { _ = try CLI.corpus(other) }
        let dir = try temporaryDirectory(self)
        // A few clips of each, linked under their own names (and URDU's emotion folders).
        let picks = ["tess/OAF_back_angry.flac", "tess/YAF_back_neutral.flac", "tess/OAF_back_ps.flac",
                     "savee/DC_a01.flac", "savee/JE_sa02.flac", "savee/KL_n03.flac",
                     "urdu/Angry/SM1_F10_A010.flac", "urdu/Sad/SF10_F1_S01.flac"]
        for pick in picks {
            let link = dir.appendingPathComponent(pick)
            try FileManager.default.createDirectory(at: link.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(at: link, withDestinationURL: data.appendingPathComponent(pick))
        }
        let run = try CLI.run(["evaluate", dir.path, "--format", "json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let reports = run.lines.map { json($0) }
        XCTAssertEqual(reports.map { $0["corpus"] as? String }, ["tess", "savee", "urdu"])
        for (report, (clips, own)) in zip(reports, [(3, 7), (3, 7), (2, 4)]) {
            XCTAssertEqual(report["clips"] as? Int, clips)
            let ownClasses = report["own_classes"] as! [String: Any]
            XCTAssertEqual((ownClasses["labels"] as! [String]).count, own)
            XCTAssertEqual((ownClasses["confusion"] as! [[Int]]).joined().reduce(0, +), clips)
            XCTAssertNotNil(report["sex_accuracy"])
        }
        // TESS: angry, neutral, surprised ("ps") are the truth rows.
        let tess = reports[0]["confusion"] as! [[Int]]
        XCTAssertEqual(tess.map { $0.reduce(0, +) }, [1, 0, 0, 0, 1, 0, 0, 1])
        // URDU's labels are its folders: angry and sad.
        let urdu = reports[2]["confusion"] as! [[Int]]
        XCTAssertEqual(urdu.map { $0.reduce(0, +) }, [0, 0, 0, 1, 1, 0, 0, 0])

        // Named explicitly, only that corpus's naming counts.
        let savee = try CLI.run(["evaluate", dir.path, "--corpus", "savee", "--format", "json"])
        XCTAssertEqual(savee.lines.count, 1, savee.stdout)
        XCTAssertEqual(json(savee.lines[0])["corpus"] as? String, "savee")
        let text = try CLI.run(["evaluate", dir.path])
        XCTAssertTrue(text.stdout.contains("over its own 4 classes"), text.stdout)
    }

    /// A clip in which no speech is heard gets no answer: it counts as wrong (emotion and sex), in
    /// its own "none" column, and the evaluation still reports the rest.
    func testAClipWithNoSpeechHeardCountsAsWrong() throws {
        let dir = try temporaryDirectory(self)
        let real = URL(fileURLWithPath: CLI.clip("03-01-05-02-01-01-03"))
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(real.lastPathComponent), withDestinationURL: real)
        // Named as actor 03's angry clip, holding pink noise at a speech-like level.
        try CLI.sox(["-n", "-r", "16000", "-c", "1", dir.appendingPathComponent("03-01-05-01-01-01-03.flac").path,
                     "synth", "3", "pinknoise", "vol", "0.1"])
        let run = try CLI.run(["evaluate", dir.path, "--format", "json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("no speech to classify") && run.stderr.contains("counted as wrong"), run.stderr)
        let report = json(run.stdout)
        XCTAssertEqual(report["clips"] as? Int, 2)
        XCTAssertEqual(report["no_speech"] as? [Int], [0, 0, 0, 0, 1, 0, 0, 0])
        let confusion = report["confusion"] as! [[Int]]
        XCTAssertEqual(confusion.joined().reduce(0, +), 1)
        XCTAssertEqual(report["accuracy"] as! Double, Double(confusion[4][4]) / 2, accuracy: 1e-4)
        XCTAssertLessThanOrEqual(report["sex_accuracy"] as! Double, 0.5)
        XCTAssertEqual((report["recall"] as! [String: Any])["angry"] as! Double, Double(confusion[4][4]) / 2, accuracy: 1e-4)
        let text = try CLI.run(["evaluate", dir.path])
        XCTAssertTrue(text.stdout.contains("1 with no speech heard, counted as wrong") && text.stdout.contains("none"), text.stdout)
    }

    /// Folders reached through links are read like any other; a folder that cannot be read or a
    /// broken link is named, and the evaluation of the rest ends non-zero.
    func testLinkedFoldersAreFollowedAndUnreadableOnesAreErrors() throws {
        let dir = try temporaryDirectory(self)
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("Actor_03"), withDestinationURL: CLI.clips.appendingPathComponent("Actor_03"))
        // A loop back to the top must not be walked forever.
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("loop"), withDestinationURL: dir)
        var run = try CLI.run(["evaluate", dir.path, "--format", "json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(json(run.stdout)["clips"] as? Int, 5, "actor 03's five clips, once")

        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("gone"), withDestinationURL: dir.appendingPathComponent("nowhere"))
        run = try CLI.run(["evaluate", dir.path, "--format", "json"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("could not read \(dir.appendingPathComponent("gone").path)"), run.stderr)
        XCTAssertEqual(json(run.stdout)["clips"] as? Int, 5, "the rest is still reported")
        try FileManager.default.removeItem(at: dir.appendingPathComponent("gone"))

        // No permission: as root every folder is readable, so the program runs as nobody there.
        let locked = dir.appendingPathComponent("locked")
        try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: false)
        try FileManager.default.setAttributes([.posixPermissions: 0], ofItemAtPath: locked.path)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
        let asUser = getuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : ""
        run = try CLI.run([], shellCommand: "\(asUser)\"$EM\" evaluate '\(dir.path)' --format json")
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("could not read \(locked.path)"), run.stderr)
    }

    /// RAVDESS names only with values RAVDESS uses; anything else is no RAVDESS clip.
    func testImpossibleRAVDESSNamesAreNotScored() throws {
        let dir = try temporaryDirectory(self)
        let real = URL(fileURLWithPath: CLI.clip("03-01-05-02-01-01-03"))
        for name in ["03-01-05-02-01-01-00", "03-01-05-02-01-01-99", "99-01-05-02-01-01-03", "03-01-05-09-01-01-03",
                     "03-01-01-02-01-01-03", "03-01-05-02-03-01-03", "03-01-05-02-01-07-03", "03-02-05-02-01-01-03"] {
            try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(name + ".flac"), withDestinationURL: real)
        }
        var run = try CLI.run(["evaluate", dir.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("no RAVDESS, TESS, SAVEE or URDU-named audio files"), run.stderr)
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("01-01-05-02-01-01-24.flac"), withDestinationURL: real)
        run = try CLI.run(["evaluate", dir.path, "--format", "json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(json(run.stdout)["clips"] as? Int, 1, "audio-visual modality and actor 24 exist")
    }

    func testNoClipThatDecodesPrintsNothingAndFails() throws {
        let dir = try temporaryDirectory(self)
        try Data("not audio".utf8).write(to: dir.appendingPathComponent("03-01-05-02-01-01-03.flac"))
        for format in ["json", "text"] {
            let run = try CLI.run(["evaluate", dir.path, "--format", format])
            XCTAssertNotEqual(run.status, 0)
            XCTAssertEqual(run.stdout, "", format)
            XCTAssertTrue(run.stderr.contains("1 of 1 files could not be analysed"), run.stderr)
        }
    }

    /// A folder with a clips.csv is one corpus, named after the folder, whatever its files are called:
    /// a clip with no emotion counts for sex only, an unknown sex for emotion only.
    func testAManifestFolderIsScoredFromItsRows() throws {
        let dir = try temporaryDirectory(self).appendingPathComponent("Mine")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("takes"), withIntermediateDirectories: true)
        let picks = [("takes/one.flac", "03-01-05-02-01-01-01"), ("takes/two.flac", "03-01-03-02-01-01-02"),
                     ("three.flac", "03-01-01-01-01-01-03"), ("four.flac", "03-01-05-02-01-01-03")]
        for (name, clip) in picks {
            try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(name), withDestinationURL: URL(fileURLWithPath: CLI.clip(clip)))
        }
        try """
            file,speaker,sex,emotion,label,note\r
            takes/one.flac,me-1,male,angry,ANG,"loud, very"\r
            takes/two.flac,me-2,female,happy,HAP,"said \"\"yes\"\"\"\r
            three.flac,me-3,unknown,neutral,NEU,\r
            four.flac,me-3,male,,tired,no counterpart\r

            """.write(to: dir.appendingPathComponent("clips.csv"), atomically: true, encoding: .utf8)
        let run = try CLI.run(["evaluate", dir.path, "--format", "json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.lines.count, 1, run.stdout)
        let report = json(run.stdout)
        XCTAssertEqual(report["corpus"] as? String, "mine")
        XCTAssertEqual(report["clips"] as? Int, 3, "the clip without an emotion is not scored for emotion")
        XCTAssertEqual(report["sex_clips"] as? Int, 3, "nor the one of unknown sex for sex")
        XCTAssertEqual((report["confusion"] as! [[Int]]).map { $0.reduce(0, +) }, [1, 0, 1, 0, 1, 0, 0, 0])
        XCTAssertEqual((report["own_classes"] as! [String: Any])["labels"] as? [String], ["neutral", "happy", "angry"])
        let text = try CLI.run(["evaluate", dir.path])
        XCTAssertTrue(text.stdout.contains("MINE, eight emotions") && text.stdout.contains("over its own 3 classes"), text.stdout)

        // Named explicitly, names count and the manifest is not read: these names are no corpus's.
        XCTAssertNotEqual(try CLI.run(["evaluate", dir.path, "--corpus", "ravdess"]).status, 0)
        // A wrong row is one line naming it; a missing file is an analysis error, not a silent gap.
        try "file,speaker,sex,emotion\nthree.flac,me,male,joyful\n".write(to: dir.appendingPathComponent("clips.csv"), atomically: true, encoding: .utf8)
        var bad = try CLI.run(["evaluate", dir.path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("clips.csv line 2: emotion 'joyful' is not one of"), bad.stderr)
        try "file,speaker,emotion\nthree.flac,me,angry\n".write(to: dir.appendingPathComponent("clips.csv"), atomically: true, encoding: .utf8)
        bad = try CLI.run(["evaluate", dir.path])
        XCTAssertTrue(bad.stderr.contains("no 'sex' column"), bad.stderr)
        try "file,speaker,sex,emotion\nthree.flac,me,male,neutral\nmissing.flac,me,male,angry\n".write(to: dir.appendingPathComponent("clips.csv"), atomically: true, encoding: .utf8)
        bad = try CLI.run(["evaluate", dir.path, "--format", "json"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("missing.flac") && bad.stderr.contains("1 of 2 files could not be analysed"), bad.stderr)
    }

    /// The corpora's own manifests, Opus files included (TESS is Ogg/Opus but for three clips).
    func testTheCorporaManifestsAndOpusClipsAreRead() throws {
        let tess = try CLI.corpus("tess")
        let dir = try temporaryDirectory(self).appendingPathComponent("tess")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let rows = try String(contentsOf: tess.appendingPathComponent("clips.csv"), encoding: .utf8).split(whereSeparator: \.isNewline)
        let opus = rows.dropFirst().filter { $0.hasPrefix("OAF") && $0.contains(".ogg,") }.prefix(4)
        XCTAssertEqual(opus.count, 4)
        let absolute = opus.map { tess.path + "/" + $0 }
        try ([String(rows[0])] + absolute).joined(separator: "\n").write(to: dir.appendingPathComponent("clips.csv"), atomically: true, encoding: .utf8)
        let run = try CLI.run(["evaluate", dir.path, "--format", "json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = json(run.stdout)
        XCTAssertEqual(report["corpus"] as? String, "tess")
        XCTAssertEqual(report["clips"] as? Int, 4)
        XCTAssertEqual(report["sex_clips"] as? Int, 4)
    }

    func testNoMatchingFilesOrBadActorsAreErrors() throws {
        let dir = try temporaryDirectory(self)
        var run = try CLI.run(["evaluate", dir.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("no RAVDESS, TESS, SAVEE or URDU-named audio files"), run.stderr)
        run = try CLI.run(["evaluate", CLI.clips.path, "--actors", "x-2"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("--actors"), run.stderr)
    }
}

import Foundation
import XCTest

final class EvaluateTests: XCTestCase {
    func testReportsAccuracyUARAndConfusionForTheChosenActors() throws {
        let run = try CLI.run(["evaluate", CLI.shared.path, "--actors", "3", "--format", "json"])
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

        let text = try CLI.run(["evaluate", CLI.shared.path, "--actors", "3"])
        XCTAssertTrue(text.stdout.contains("accuracy"), text.stdout)
        XCTAssertTrue(text.stdout.contains("surprised"), text.stdout)
    }

    func testNoMatchingFilesOrBadActorsAreErrors() throws {
        let dir = try temporaryDirectory(self)
        var run = try CLI.run(["evaluate", dir.path])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("no RAVDESS-named audio files"), run.stderr)
        run = try CLI.run(["evaluate", CLI.shared.path, "--actors", "x-2"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("--actors"), run.stderr)
    }
}

import Foundation

/// The audio files under `folder`, in path order, through links to folders like any file tool; with
/// `manifests`, the corpus manifests (`clips.csv`) among them too; and the folders and links it could
/// not read (no permission, broken), so that none is passed over unsaid.
public func audioFiles(in folder: String, manifests: Bool = false) -> (files: [String], manifests: [String], unreadable: [String]) {
    var files: [String] = [], found: [String] = [], unreadable: [String] = []
    // Each folder once, by device and inode: a link back to a parent ends there.
    var visited = Set<[UInt64]>()
    func walk(_ directory: String) {
        var info = stat()
        guard stat(directory, &info) == 0, visited.insert([UInt64(info.st_dev), UInt64(info.st_ino)]).inserted else { return }
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return unreadable.append(directory) }
        for name in names {
            let path = (directory as NSString).appendingPathComponent(name)
            var entry = stat()
            if stat(path, &entry) != 0 {
                // A link to nothing: said, as a folder that cannot be read is.
                if lstat(path, &entry) == 0 && entry.st_mode & S_IFMT == S_IFLNK { unreadable.append(path) }
            } else if entry.st_mode & S_IFMT == S_IFDIR {
                walk(path)
            } else if isAudioFile(path) {
                files.append(path)
            } else if manifests && name == Manifest.fileName {
                found.append(path)
            }
        }
    }
    walk(folder)
    return (files.sorted(), found.sorted(), unreadable.sorted())
}

/// One line for what a folder walk could not read, or nil.
public func skippedLine(_ unreadable: [String]) -> String? {
    guard let first = unreadable.first else { return nil }
    return "could not read \(unreadable.count == 1 ? first : "\(unreadable.count) paths (\(unreadable.joined(separator: ", ")))") (no permission, or a broken link)"
}

/// By name: the formats libsndfile is usually built with.
public func isAudioFile(_ path: String) -> Bool {
    ["wav", "flac", "ogg", "mp3"].contains((path as NSString).pathExtension.lowercased())
}

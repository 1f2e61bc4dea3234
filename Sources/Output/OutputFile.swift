import Foundation

/// Writes a whole output file (a plot, a profile) without harming what is at the path: a regular
/// file (or a symbolic link to one) is replaced atomically, a new file is created the same way, a
/// device, pipe or socket (`/dev/null`, `/dev/stdout`, a FIFO) is written through, and anything else
/// is refused. Threading: stateless; safe from any thread.
public enum OutputFile {
    public struct Failure: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// True when both paths name one existing regular file, however spelled (links, `./`, absolute):
    /// an output that is also an input would destroy the input.
    public static func sameFile(_ path: String, _ other: String) -> Bool {
        var a = stat(), b = stat()
        return stat(path, &a) == 0 && stat(other, &b) == 0 && a.st_mode & S_IFMT == S_IFREG
            && a.st_dev == b.st_dev && a.st_ino == b.st_ino
    }

    public static func write(_ data: Data, to path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            guard errno == ENOENT else { throw Failure(path: path, reason: String(cString: strerror(errno))) }
            var link = stat()
            if lstat(path, &link) == 0 { throw Failure(path: path, reason: "is a symbolic link to nothing") }
            return try replace(path, with: data, mode: 0o644)
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            // Through a link the rename must land on the file the link names, not on the link.
            guard let target = realpath(path, nil) else { throw Failure(path: path, reason: String(cString: strerror(errno))) }
            defer { free(target) }
            try replace(String(cString: target), with: data, mode: info.st_mode & 0o7777)
        case S_IFCHR, S_IFIFO, S_IFSOCK:
            try writeThrough(path, data)
        case S_IFDIR:
            throw Failure(path: path, reason: "is a directory")
        default:
            throw Failure(path: path, reason: "is not a regular file, a character device or a pipe; refusing to write it")
        }
    }

    /// A temporary file beside `path`, flushed to disk, renamed over it: a crash or full disk leaves
    /// the old file or the new one, never half of either.
    private static func replace(_ path: String, with data: Data, mode: mode_t) throws {
        let folder = (path as NSString).deletingLastPathComponent
        guard let (fd, temporary) = makeTemporary(in: folder.isEmpty ? "." : folder, prefix: ".emotion-monitor-") else {
            throw Failure(path: path, reason: "cannot create a file beside it (\(String(cString: strerror(errno))))")
        }
        do {
            try writeAll(fd, data, path: path)
            guard fchmod(fd, mode) == 0, fsync(fd) == 0 else { throw Failure(path: path, reason: String(cString: strerror(errno))) }
            close(fd)
            guard rename(temporary, path) == 0 else { throw Failure(path: path, reason: String(cString: strerror(errno))) }
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        let dir = open(folder.isEmpty ? "." : folder, O_RDONLY | O_CLOEXEC)
        if dir >= 0 { fsync(dir); close(dir) }
    }

    private static func writeThrough(_ path: String, _ data: Data) throws {
        // Non-blocking open: a FIFO nobody reads is an error now, not a hang.
        let fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw Failure(path: path, reason: errno == ENXIO ? "no process is reading it" : String(cString: strerror(errno)))
        }
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        try writeAll(fd, data, path: path)
    }

    /// A new file only this user can read, `prefix` and six random characters in `folder` (mkstemp):
    /// its descriptor and path, or nil with errno set.
    public static func makeTemporary(in folder: String, prefix: String) -> (fd: Int32, path: String)? {
        var template = Array((folder + "/" + prefix + "XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return nil }
        return (fd, String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// Writes all of `data` to `fd`, through short writes and interruptions.
    public static func writeAll(_ fd: Int32, _ data: Data, path: String) throws {
        try data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Foundation.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw Failure(path: path, reason: "cannot write it (\(String(cString: strerror(errno))))") }
                offset += n
            }
        }
    }
}

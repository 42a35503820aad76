import Foundation

/// What `swift build` laid out beside the running test bundle: the `mdevsim` command,
/// `libmdevsim-vfio.so`, `mdevsim-vfio-probe`. One lookup for every test target.
public enum BuiltProducts {
    /// The build's products directory (`.build/<config>`).
    public static var directory: URL {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // The test bundle may sit inside a .xctest directory.
        if dir.pathExtension == "xctest" { dir = dir.deletingLastPathComponent() }
        return dir
    }

    /// A product the build made.
    public struct Missing: Error, CustomStringConvertible {
        public var path: String
        public var hint: String
        public var description: String { "\(path) is missing: \(hint)" }
    }

    /// The path of product `name`; throws when it was not built, saying how to build it.
    public static func path(_ name: String, hint: String = "run swift build first") throws -> String {
        let path = directory.appendingPathComponent(name).path
        guard FileManager.default.fileExists(atPath: path) else { throw Missing(path: path, hint: hint) }
        return path
    }

    /// The `mdevsim` command of this build.
    public static func mdevsim() throws -> String { try path("mdevsim") }
}

/// Runs a program to its end; returns its exit status and its stdout and stderr together.
public func runTool(_ path: String, _ arguments: [String]) throws -> (Int32, String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

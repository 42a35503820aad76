import ArgumentParser
import Foundation
import Glibc
import MigrationProtocol

/// `mdevsim qemu-args UUID`: what to add to a QEMU command line so that an unmodified QEMU
/// (7.2, migration v1) uses a device of a mount through `libmdevsim-vfio.so`.
struct QemuArgs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qemu-args",
        abstract: "Print the environment and -device argument that give QEMU a device of a mount.",
        discussion: """
            Prints two lines: the environment (LD_PRELOAD of libmdevsim-vfio.so, found next to \
            this executable, and MDEVSIM_VFIO_MOUNT) and the -device argument. For scripts: \
            env $(mdevsim qemu-args UUID --env-only) qemu-system-x86_64 ... $(mdevsim qemu-args UUID --device-only)

            \(ExitStatus.help([.success, .badInput, .environment, .usage]))
            """
    )

    @Argument(help: "The device's UUID (a directory of MOUNT/devices).")
    var uuid: String

    @Option(name: .long, help: "The mountpoint; default: $MDEVSIM_VFIO_MOUNT, else the only mdevsim mount.")
    var mount: String?

    @Flag(name: .long, help: "Serve the data section from the shim's bounce buffer instead of mapping the mount.")
    var bounce = false

    @Option(name: .long, help: "A file the shim appends a line per emulated call to.")
    var log: String?

    @Flag(name: .long, help: "Print only the environment assignments.")
    var envOnly = false

    @Flag(name: .long, help: "Print only the -device option and its value.")
    var deviceOnly = false

    /// The shim's file name, as the package's `mdevsim-vfio` product builds it.
    static let libraryName = "libmdevsim-vfio.so"

    func validate() throws {
        if envOnly && deviceOnly { throw ValidationError("--env-only and --device-only exclude each other") }
        if case .failure = MdevUUID.parse(uuid) {
            throw ValidationError("'\(uuid)' is not an mdev UUID: 36 characters, hex digits and dashes as 8-4-4-4-12")
        }
    }

    @OptionGroup var logging: LoggingOptions

    /// The device's name as the mount has it (lowercase).
    private var device: String { (try? MdevUUID.parse(uuid).get()) ?? uuid }

    func run() throws {
        logging.bootstrap()
        guard let mountpoint = try resolveMount() else {
            throw CommandError("no mdevsim mount found", fix: "give --mount", status: .badInput)
        }
        let library = try Self.libraryPath()
        var env = ["LD_PRELOAD=\(library)", "MDEVSIM_VFIO_MOUNT=\(mountpoint)"]
        if bounce { env.append("MDEVSIM_VFIO_BOUNCE=1") }
        if let log { env.append("MDEVSIM_VFIO_LOG=\(absolute(log))") }
        let deviceArgument = ["-device", "vfio-pci,sysfsdev=\(mountpoint)/devices/\(device),x-enable-migration=on"]
        if !deviceOnly { print(env.joined(separator: " ")) }
        if !envOnly { print(deviceArgument.joined(separator: " ")) }
    }

    /// The library next to this executable (the same build directory or install prefix).
    static func libraryPath() throws -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let path = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent(libraryName).path
        guard FileManager.default.fileExists(atPath: path) else {
            throw CommandError("the shim \(path) is missing", fix: "build it with swift build --product mdevsim-vfio (same configuration as mdevsim)", status: .environment)
        }
        return path
    }

    private func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// The given mount (or $MDEVSIM_VFIO_MOUNT), made absolute and checked to have the device;
    /// else the only mdevsim mount of /proc/self/mounts. With several, the user must choose:
    /// looking into each could hang on one whose daemon is stuck.
    private func resolveMount() throws -> String? {
        let given = mount ?? ProcessInfo.processInfo.environment["MDEVSIM_VFIO_MOUNT"].flatMap { $0.isEmpty ? nil : $0 }
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        let candidates = mounts.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ")
            guard fields.count > 2, fields[0] == "mdevsim", fields[2] == "fuse.mdevsim" else { return nil }
            // /proc/mounts escapes spaces as \040.
            return String(fields[1]).replacingOccurrences(of: "\\040", with: " ")
        }
        guard let chosen = given ?? candidates.first else { return nil }
        if given == nil, candidates.count > 1 {
            throw CommandError("\(candidates.count) mdevsim mounts", cause: candidates.joined(separator: ", "), fix: "give --mount", status: .badInput)
        }
        var resolved = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard realpath(chosen, &resolved) != nil else { throw CommandError("cannot use the mount \(chosen)", cause: String(cString: strerror(errno)), status: .badInput) }
        let path = String(decoding: resolved.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(path)/devices/\(device)/iommu_group")) != nil else {
            throw CommandError("no device \(device)", cause: "\(path)/devices/\(device) does not exist (or is not an mdevsim device)", status: .badInput)
        }
        return path
    }
}

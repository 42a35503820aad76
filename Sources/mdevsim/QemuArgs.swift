import ArgumentParser
import Foundation
import Glibc
import MigrationProtocol

/// `mdevsim qemu-args UUID`: what to add to a QEMU command line so that an unmodified QEMU
/// (7.2, migration v1, or 10.0, migration v2) uses a device of a mount through `libmdevsim-vfio.so`.
struct QemuArgs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qemu-args",
        abstract: "Print the environment and -device argument that give QEMU a device of a mount.",
        discussion: """
            Prints two lines: the environment (LD_PRELOAD of libmdevsim-vfio.so, found next to \
            this executable, and MDEVSIM_VFIO_MOUNT) and the -device argument. For scripts: \
            env $(mdevsim qemu-args UUID --env-only) qemu-system-x86_64 ... $(mdevsim qemu-args UUID --device-only)

            --qemu 10 is for the private QEMU 10.0 of scripts/install-qemu10.sh \
            ($MDEVSIM_QEMU10_ROOT, default /opt/mdevsim-qemu10; run ROOT/usr/bin/qemu-system-x86_64): \
            the -device gets enable-migration=on, and the options start with -L for its firmware \
            folders. The device's type must speak v2 (protocols: [v2] or [v1, v2]).

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

    @Flag(name: .long, help: "Print only the QEMU options: -device and its value (with --qemu 10, after the -L options).")
    var deviceOnly = false

    @Option(name: .long, help: "The QEMU the options are for: 7.2 (migration v1) or 10 (10.0, migration v2).")
    var qemu: QemuVersion = .v7

    /// The QEMUs whose VFIO migration client the project serves.
    enum QemuVersion: String, ExpressibleByArgument, CaseIterable {
        case v7 = "7.2"
        case v10 = "10"

        init?(argument: String) {
            switch argument {
            case "7.2", "7": self = .v7
            case "10", "10.0": self = .v10
            default: return nil
            }
        }
    }

    /// Where scripts/install-qemu10.sh unpacks QEMU 10.0.
    static var qemu10Root: String {
        ProcessInfo.processInfo.environment["MDEVSIM_QEMU10_ROOT"].flatMap { $0.isEmpty ? nil : $0 } ?? "/opt/mdevsim-qemu10"
    }

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
        // The shim serves a device with v2 files as v2; QEMU 7.2 knows v1 only. (Unchanged
        // output for a v1-only device.)
        let speaksV2 = FileManager.default.fileExists(atPath: "\(mountpoint)/devices/\(device)/mig_state")
        if qemu == .v7 && speaksV2 { env.append("MDEVSIM_VFIO_PROTOCOL=v1") }
        if qemu == .v10 && !speaksV2 {
            throw CommandError("\(device): its type does not speak migration v2, which QEMU 10 needs", fix: "add protocols: [v1, v2] to the scenario", status: .badInput)
        }
        let sysfsdev = "vfio-pci,sysfsdev=\(mountpoint)/devices/\(device)"
        let deviceArgument: [String]
        switch qemu {
        case .v7:
            deviceArgument = ["-device", "\(sysfsdev),x-enable-migration=on"]
        case .v10:
            // enable-migration=on rather than the default auto: a device QEMU cannot migrate then
            // fails at start instead of silently getting a migration blocker. (Dirty tracking is
            // the device's DMA logging, or, with MDEVSIM_VFIO_DMA_LOGGING=0, the container's.)
            // Its own firmware folder, then the system's SeaBIOS (the private copy has none).
            deviceArgument = ["-L", "\(Self.qemu10Root)/usr/share/qemu", "-L", "/usr/share/seabios",
                      "-device", "\(sysfsdev),enable-migration=on"]
        }
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

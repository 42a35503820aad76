import Conformance
import Foundation
import Glibc
import MdevFS
import Scenarios
import Testing
import TestSupport

/// Where the tests find the repository's scenarios.
let repositoryDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The QEMU every test runs: Debian's 7.2 (the last with the VFIO migration v1 client).
let qemuBinary = "/usr/bin/qemu-system-x86_64"

/// The two QEMUs the tests run: Debian's 7.2 (migration v1), and QEMU 10.0 (migration v2) from
/// bookworm-backports, unpacked by scripts/install-qemu10.sh into $MDEVSIM_QEMU10_ROOT or
/// /opt/mdevsim-qemu10.
enum QEMUBuild: Sendable {
    case qemu7
    case qemu10

    static var qemu10Root: String {
        ProcessInfo.processInfo.environment["MDEVSIM_QEMU10_ROOT"].flatMap { $0.isEmpty ? nil : $0 } ?? "/opt/mdevsim-qemu10"
    }

    var binary: String { self == .qemu7 ? qemuBinary : "\(Self.qemu10Root)/usr/bin/qemu-system-x86_64" }

    var missingHint: String {
        self == .qemu7
            ? "install it with scripts/ensure-deps.sh (apt-get install -y --no-install-recommends qemu-system-x86)"
            : "install it as root with scripts/install-qemu10.sh (scripts/ensure-deps.sh --with-qemu does)"
    }

    /// What goes before the -device (QEMU 10's firmware folders: its own, then the system's
    /// SeaBIOS, which the private copy lacks) and the device's migration switch, as `mdevsim
    /// qemu-args --qemu 10` prints them (`on`: a device QEMU cannot migrate fails at start
    /// rather than getting a migration blocker).
    var firmwareArguments: [String] {
        self == .qemu7 ? [] : ["-L", "\(Self.qemu10Root)/usr/share/qemu", "-L", "/usr/share/seabios"]
    }

    var migrationSwitch: String { self == .qemu7 ? "x-enable-migration=on" : "enable-migration=on" }
}

/// libmdevsim-vfio.so of this build (or $MDEVSIM_VFIO_LIBRARY), next to the test bundle.
func shimLibrary() throws -> String {
    if let path = ProcessInfo.processInfo.environment["MDEVSIM_VFIO_LIBRARY"], !path.isEmpty { return path }
    return try BuiltProducts.path("libmdevsim-vfio.so", hint: "run swift build --product mdevsim-vfio first (scripts/test.sh does)")
}

/// The QEMU tests' mounts are the shared fixture, with what these tests read of a device.
typealias QEMUMount = MountFixture

extension MountFixture {
    convenience init(_ scenario: Scenario) throws { try self.init(scenario, prefix: "mdevsim-qemu") }

    func read(_ uuid: String, _ file: String) -> String {
        ((try? String(contentsOfFile: "\(path)/devices/\(uuid)/\(file)", encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The device's `state` JSON.
    func state(_ uuid: String) -> [String: Any] {
        let text = read(uuid, "state")
        return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    /// The rules of the violations the checker recorded for the device.
    func violationRules(_ uuid: String) -> [String] {
        read(uuid, "violations").split(separator: "\n").compactMap { line in
            ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["rule"] as? String
        }
    }
}

/// A QMP connection over a unix socket: one command at a time, events skipped.
final class QMPClient {
    private let fd: Int32
    private var pending: [UInt8] = []

    /// Connects, retrying until QEMU has created the socket, and negotiates capabilities.
    init(socket path: String, timeout: TimeInterval = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var connected: Int32 = -1
        while connected < 0 {
            let s = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard s >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let bytes = Array(path.utf8)
            guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw HarnessError("socket path too long: \(path)") }
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                raw.copyBytes(from: bytes)
                raw[bytes.count] = 0
            }
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if rc == 0 {
                connected = s
            } else {
                Glibc.close(s)
                if Date() > deadline { throw HarnessError("QMP socket \(path) did not accept a connection in \(timeout) s") }
                usleep(50_000)
            }
        }
        fd = connected
        // Never wait forever for QEMU: a hung QEMU fails the test instead.
        var tv = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = try readMessage() // the greeting
        _ = try execute("qmp_capabilities")
    }

    deinit { Glibc.close(fd) }

    /// Runs a command; returns its `return` value, or throws its `error`.
    @discardableResult
    func execute(_ command: String, _ arguments: [String: Any] = [:]) throws -> Any {
        var message: [String: Any] = ["execute": command]
        if !arguments.isEmpty { message["arguments"] = arguments }
        var data = try JSONSerialization.data(withJSONObject: message)
        data.append(0x0a)
        try data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var sent = 0
            while sent < raw.count {
                let n = send(fd, base + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                guard n > 0 else { throw HarnessError("QMP send of \(command): \(String(cString: strerror(errno)))") }
                sent += n
            }
        }
        while true {
            let reply = try readMessage()
            if let value = reply["return"] { return value }
            if let error = reply["error"] { throw HarnessError("QMP \(command): \(error)") }
            // An event: skip.
        }
    }

    /// `execute` for commands that answer an object.
    func object(_ command: String, _ arguments: [String: Any] = [:]) throws -> [String: Any] {
        try execute(command, arguments) as? [String: Any] ?? [:]
    }

    private func readMessage() throws -> [String: Any] {
        while true {
            if let newline = pending.firstIndex(of: 0x0a) {
                let line = Array(pending[..<newline])
                pending.removeFirst(newline + 1)
                if line.isEmpty { continue }
                guard let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    throw HarnessError("QMP: not an object: \(String(decoding: line, as: UTF8.self))")
                }
                return object
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { throw HarnessError("QMP connection closed or timed out (\(n < 0 ? String(cString: strerror(errno)) : "EOF"))") }
            pending += buffer[..<n]
        }
    }
}

/// One qemu-system-x86_64 with the shim and one device of a mount. Always `stop()` it.
final class QEMUInstance {
    let name: String
    let process = Process()
    let qmpPath: String
    let logPath: String
    let outputPath: String

    /// - Parameters:
    ///   - paused: `-S` (the guest does not run until `cont`).
    ///   - incomingPort: makes it a destination waiting on 127.0.0.1:port.
    init(name: String, directory: String, mount: QEMUMount, uuid: String, paused: Bool, incomingPort: Int? = nil,
         bounce: Bool = false, environment extra: [String: String] = [:], qemu: QEMUBuild = .qemu7,
         migrationSwitch: String? = nil, extraArguments: [String] = []) throws {
        // Missing is a failure, never a skip: CI must run what it claims to run.
        guard FileManager.default.isExecutableFile(atPath: qemu.binary) else {
            throw HarnessError("\(qemu.binary) is missing: \(qemu.missingHint)")
        }
        self.name = name
        qmpPath = "\(directory)/\(name).qmp"
        logPath = "\(directory)/\(name).shim.log"
        outputPath = "\(directory)/\(name).out"
        var environment = ProcessInfo.processInfo.environment
        environment["LD_PRELOAD"] = try shimLibrary()
        environment["MDEVSIM_VFIO_MOUNT"] = mount.path
        environment["MDEVSIM_VFIO_LOG"] = logPath
        environment["MDEVSIM_VFIO_BOUNCE"] = bounce ? "1" : nil
        environment.merge(extra) { _, new in new }
        var arguments = qemu.firmwareArguments + [
            "-machine", "q35", "-accel", "tcg", "-m", "128", "-nographic", "-nodefaults", "-display", "none",
            "-serial", "none", "-qmp", "unix:\(qmpPath),server,nowait",
            "-device", "vfio-pci,sysfsdev=\(mount.path)/devices/\(uuid),\(migrationSwitch ?? qemu.migrationSwitch)",
        ]
        arguments += extraArguments
        if paused { arguments.append("-S") }
        if let incomingPort { arguments += ["-incoming", "tcp:127.0.0.1:\(incomingPort)"] }
        process.executableURL = URL(fileURLWithPath: qemu.binary)
        process.arguments = arguments
        process.environment = environment
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    /// Ends QEMU: `quit` was already sent or it died; otherwise SIGTERM, then SIGKILL.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    func waitForExit(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// The `device_state` values QEMU wrote, in order, as the shim forwarded them one to one.
    var stateWrites: [UInt32] {
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").compactMap { line -> UInt32? in
            guard line.contains(" write device_state "), line.hasSuffix("-> ok"),
                  let hex = line.split(separator: " ").first(where: { $0.hasPrefix("0x") }) else { return nil }
            return UInt32(hex.dropFirst(2), radix: 16)
        }
    }

    /// The v2 states QEMU SET successfully, in order (the targets, not each arc of the walks).
    var v2Sets: [String] {
        shimLog.split(separator: "\n").compactMap { line -> String? in
            guard let range = line.range(of: " v2 SET "), line.contains("-> ok data_fd") else { return nil }
            return line[range.upperBound...].split(separator: " ").first.map(String.init)
        }
    }

    var shimLog: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
func freePort() throws -> Int {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard s >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
    defer { close(s) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw HarnessError("bind: \(String(cString: strerror(errno)))") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A fresh directory for sockets and logs, removed by `remove`.
func temporaryDirectory() throws -> String { try makeTemporaryDirectory("mdevsim-qemu-run") }

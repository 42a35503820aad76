import Foundation
import MdevFS
import Testing
import TestSupport

/// The shim and the command that hands it to QEMU, without running QEMU.
@Suite struct ShimBuildTests {
    /// Loaded into every VMM process: it must need no Swift runtime (nor anything but system
    /// C/C++ libraries) and must export the glibc entry points it wraps.
    @Test func libraryNeedsNoSwiftRuntime() throws {
        let library = try shimLibrary()
        let needed = try run("/usr/bin/ldd", [library])
        #expect(!needed.contains("swift"), "\(needed)")
        #expect(!needed.contains("not found"), "\(needed)")
        let symbols = try run("/usr/bin/nm", ["-D", "--defined-only", library])
        for name in ["open64", "openat64", "ioctl", "pread64", "pwrite64", "mmap64", "munmap", "close", "dup2", "fcntl64", "madvise"] {
            #expect(symbols.split(separator: "\n").contains { $0.hasSuffix(" T \(name)") }, "\(name) is not exported")
        }
    }

    /// `mdevsim qemu-args` prints the LD_PRELOAD environment and the -device argument.
    @Test func qemuArgsPrintsEnvironmentAndDevice() throws {
        let scenario = try loadScenario("default.yaml")
        let mount = try QEMUMount(scenario)
        defer { mount.close() }
        let uuid = try mount.createDevice(type: "mdevsim-default")
        let mdevsim = try BuiltProducts.mdevsim()
        let lines = try run(mdevsim, ["qemu-args", uuid, "--mount", mount.path, "--bounce"]).split(separator: "\n").map(String.init)
        #expect(lines == [
            "LD_PRELOAD=\(try shimLibrary()) MDEVSIM_VFIO_MOUNT=\(mount.path) MDEVSIM_VFIO_BOUNCE=1",
            "-device vfio-pci,sysfsdev=\(mount.path)/devices/\(uuid),x-enable-migration=on",
        ])
        #expect(try run(mdevsim, ["qemu-args", uuid, "--mount", mount.path, "--device-only"]) == lines[1] + "\n")
        #expect(throws: HarnessError.self) { try run(mdevsim, ["qemu-args", "no-such-device", "--mount", mount.path]) }
    }

    /// `--qemu 10`: the same environment; QEMU 10's firmware folders, then the device with
    /// `enable-migration=on` (QEMU 10's name for the switch, and `on` rather than its default
    /// `auto`, which would want device DMA logging). Nothing else changes for 7.2.
    @Test func qemuArgsForQEMU10() throws {
        let scenario = try loadScenario("qemu10.yaml")
        let mount = try QEMUMount(scenario)
        defer { mount.close() }
        let uuid = try mount.createDevice(type: "mdevsim-both")
        let mdevsim = URL(fileURLWithPath: try shimLibrary()).deletingLastPathComponent().appendingPathComponent("mdevsim").path
        let lines = try run(mdevsim, ["qemu-args", uuid, "--mount", mount.path, "--qemu", "10"]).split(separator: "\n").map(String.init)
        #expect(lines == [
            "LD_PRELOAD=\(try shimLibrary()) MDEVSIM_VFIO_MOUNT=\(mount.path)",
            "-L \(QEMUBuild.qemu10Root)/usr/share/qemu -L /usr/share/seabios -device vfio-pci,sysfsdev=\(mount.path)/devices/\(uuid),enable-migration=on",
        ])
        #expect(try run(mdevsim, ["qemu-args", uuid, "--mount", mount.path, "--qemu", "7.2", "--device-only"])
                == "-device vfio-pci,sysfsdev=\(mount.path)/devices/\(uuid),x-enable-migration=on\n")
        // QEMU 7.2 knows v1 only: the shim is told to serve this v1+v2 device as v1.
        #expect(try run(mdevsim, ["qemu-args", uuid, "--mount", mount.path, "--env-only"])
                == "LD_PRELOAD=\(try shimLibrary()) MDEVSIM_VFIO_MOUNT=\(mount.path) MDEVSIM_VFIO_PROTOCOL=v1\n")
        #expect(throws: HarnessError.self) { try run(mdevsim, ["qemu-args", uuid, "--mount", mount.path, "--qemu", "8"]) }
    }

    /// The shim's own contract, driven by `mdevsim-vfio-probe` as a VMM would: ioctls dispatched
    /// by descriptor kind, dup/F_DUPFD, a closed number reused by an ordinary open, 4 threads at
    /// once, reopening a device. Without the shim the same probe fails at its first open.
    @Test func probeExercisesTheShimContract() throws {
        let scenario = try loadScenario("default.yaml")
        let mount = try QEMUMount(scenario)
        defer { mount.close() }
        let uuid = try mount.createDevice(type: "mdevsim-default")
        let probe = try BuiltProducts.path("mdevsim-vfio-probe")
        let output = try run(probe, [mount.path, uuid],
                             environment: ["LD_PRELOAD": try shimLibrary(), "MDEVSIM_VFIO_MOUNT": mount.path])
        #expect(output.hasSuffix("all checks passed\n"), "\(output)")
        #expect(output.split(separator: "\n").filter { $0.hasPrefix("ok ") }.count == 29)
        #expect(mount.violationRules(uuid).isEmpty)
        #expect(throws: HarnessError.self) { try run(probe, [mount.path, uuid]) }
    }

    /// The shim's `migration.info` parser (config.c, loaded from libmdevsim-vfio.so) reads what
    /// the mount writes, mappable or not, as the Swift type that writes it says.
    @Test(arguments: ["default.yaml", "mmap-off-pread.yaml"])
    func shimParsesTheMigrationInfoTheMountWrites(_ file: String) throws {
        let scenario = try loadScenario(file)
        let mount = try QEMUMount(scenario)
        defer { mount.close() }
        let uuid = try mount.createDevice(type: scenario.types[0].name)
        let dir = "\(mount.path)/devices/\(uuid)"
        let info = try RegionInfo.read(directory: dir)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("mdevsim-shim-parse-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: work) }
        try Self.parser.write(toFile: "\(work)/parse.c", atomically: true, encoding: .utf8)
        _ = try run("/usr/bin/cc", ["-std=c11", "-Wall", "-Wextra", "-Werror", "-o", "\(work)/parse", "\(work)/parse.c", "-ldl"])
        let output = try run("\(work)/parse", [try shimLibrary(), "\(dir)/migration.info"])
        let area = info.mmapAreas.first.map { "\($0.offset) \($0.size)" } ?? "none"
        #expect(output == """
            index=\(info.index)
            size=\(info.size)
            flags_value=\(info.flagsValue)
            type=\(info.type)
            subtype=\(info.subtype)
            header_size=\(info.headerSize)
            data_offset=\(info.dataOffset)
            data_size=\(info.dataSize)
            mmap_area=\(area)

            """)
        #expect((info.mmapAreas.isEmpty) == (file == "mmap-off-pread.yaml"))
    }

    /// Calls the shim's own parser on a file: the library is dlopen'ed, so nothing of it is
    /// interposed on this program.
    static let parser = #"""
        #include <dlfcn.h>
        #include <stdint.h>
        #include <stdio.h>
        int main(int argc, char **argv) {
            if (argc != 3) return 2;
            void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
            if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
            int (*u64)(const char *, const char *, uint64_t *) = (int (*)(const char *, const char *, uint64_t *))dlsym(lib, "shim_json_u64");
            int (*area)(const char *, uint64_t *, uint64_t *) = (int (*)(const char *, uint64_t *, uint64_t *))dlsym(lib, "shim_json_first_area");
            if (!u64 || !area) return 1;
            char json[4096];
            FILE *f = fopen(argv[2], "r");
            if (!f) return 1;
            size_t n = fread(json, 1, sizeof json - 1, f);
            fclose(f);
            json[n] = 0;
            const char *keys[] = {"index", "size", "flags_value", "type", "subtype", "header_size", "data_offset", "data_size"};
            for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
                uint64_t v = 0;
                if (u64(json, keys[i], &v) != 0) { printf("%s=missing\n", keys[i]); continue; }
                printf("%s=%llu\n", keys[i], (unsigned long long)v);
            }
            uint64_t offset = 0, size = 0;
            if (area(json, &offset, &size) == 0) printf("mmap_area=%llu %llu\n", (unsigned long long)offset, (unsigned long long)size);
            else printf("mmap_area=none\n");
            return 0;
        }
        """#


    /// The v2 calls, driven by `mdevsim-vfio-probe ... v2` on a device speaking v1 and v2: the
    /// kernel's VFIO_DEVICE_FEATURE header checks, MIG_DEVICE_STATE and its data_fd (dup, close,
    /// PRECOPY_INFO, reads to the end of STOP_COPY), MIG_DATA_SIZE and DMA logging, each errno exact.
    @Test func probeExercisesTheShimV2Contract() throws {
        let scenario = try loadScenario("qemu10.yaml")
        let mount = try QEMUMount(scenario)
        defer { mount.close() }
        let uuid = try mount.createDevice(type: "mdevsim-both")
        let probe = URL(fileURLWithPath: try shimLibrary()).deletingLastPathComponent().appendingPathComponent("mdevsim-vfio-probe").path
        let output = try run(probe, [mount.path, uuid, "v2"],
                             environment: ["LD_PRELOAD": try shimLibrary(), "MDEVSIM_VFIO_MOUNT": mount.path])
        #expect(output.hasSuffix("all checks passed\n"), "\(output)")
        #expect(output.split(separator: "\n").filter { $0.hasPrefix("ok v2: ") }.count == 37)
        // The probe's deliberate misuses are the checker's too: PRECOPY_INFO in STOP_COPY, and the
        // DMA-logging calls the shim now forwards to the mount (REPORT before START, a second
        // START, a REPORT page size of 3000).
        #expect(mount.violationRules(uuid) == ["v2-precopy-info-state", "v2-dma-log-report-without-start", "v2-dma-log-start-twice", "v2-dma-log-page-size"])
        // Each state entered, the reset's RUNNING last.
        #expect(mount.read(uuid, "mig_state_log") == "RUNNING_P2P PRE_COPY_P2P STOP_COPY STOP RUNNING")
    }

    /// Runs a program; its standard output, or throws with its standard error when it fails.
    private func run(_ program: String, _ arguments: [String], environment: [String: String] = [:]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw HarnessError("\(program) \(arguments.joined(separator: " ")): exit \(process.terminationStatus): \(String(decoding: output + error, as: UTF8.self))")
        }
        return String(decoding: output, as: UTF8.self)
    }
}

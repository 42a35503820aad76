import Conformance
import Foundation
import FUSEKit
import Glibc
import Testing
import TestSupport

/// The mount as Linux tools use it, each run unmodified inside a private mount namespace
/// (`unshare -m`, so nothing here shows on the host): the real `mount -t fuse.mdevsim` and an
/// /etc/fstab line (mount(8) -> mount.fuse3 -> `mdevsim SOURCE MOUNTPOINT -o OPTS`), and
/// Debian's mdevctl against the sysfs-shaped tree bind-mounted where it looks
/// (/sys/class/mdev_bus, /sys/bus/mdev/devices).
@Suite(.serialized) struct LinuxToolsTests {
    /// Runs `script` with `sh -s` inside `unshare -m` (positional arguments `arguments`).
    static func inPrivateNamespace(_ script: String, _ arguments: [String]) throws -> (Int32, String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("mdevsim-ns-\(UUID().uuidString).sh").path
        try script.write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        return try runTool("/usr/bin/unshare", ["-m", "--propagation", "private", "/bin/sh", path] + arguments)
    }

    /// The daemon pids the daemons printed ("(daemon pid N)"), to wait for their exit.
    static func daemonPIDs(_ output: String) -> [pid_t] {
        output.components(separatedBy: "(daemon pid ").dropFirst().compactMap { pid_t($0.prefix { $0.isNumber }) }
    }

    static func waitGone(_ pids: [pid_t]) -> Bool {
        for _ in 0..<1500 {
            if pids.allSatisfy({ kill($0, 0) != 0 }) { return true }
            usleep(10_000)
        }
        return false
    }

    /// Puts the test's mdevsim on the PATH mount(8) gives its helpers (it resets PATH to
    /// /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin), in the namespace only.
    static let installInNamespace = """
        set -u
        mount -t tmpfs mdevsim-test-bin /usr/local/sbin || exit 90
        ln -s "$1" /usr/local/sbin/mdevsim || exit 91

        """

    @Test func mountTypeFuseMdevsimAndAnFstabLine() throws {
        let mp = try RunMountpoint(prefix: "/tmp/mdevsim-mount8.")
        defer { mp.remove() }
        let scenario = MountCLITests.repository.appendingPathComponent("scenarios/small-converges.yaml").path
        let script = Self.installInNamespace + """
            mp=$2; scenario=$3
            echo "== mount -t"
            mount -t fuse.mdevsim "$scenario" "$mp" -o strict,default_permissions; echo "rc=$?"
            grep " $mp " /proc/self/mountinfo
            ls "$mp/mdev_supported_types"
            umount "$mp"; echo "umount rc=$?"
            echo "== fstab"
            echo "default $mp fuse.mdevsim defaults,noauto,nofail,x-systemd.automount,allow_other 0 0" > "$mp.fstab"
            mount --bind "$mp.fstab" /etc/fstab || exit 92
            mount "$mp"; echo "rc=$?"
            grep " $mp " /proc/self/mountinfo
            ls "$mp/mdev_supported_types"
            umount "$mp"; echo "umount rc=$?"
            rm -f "$mp.fstab"
            """
        let (status, output) = try Self.inPrivateNamespace(script, [MountCommandTests.executable, mp.path, scenario])
        #expect(status == 0, "\(output)")
        let parts = output.components(separatedBy: "== fstab")
        #expect(parts.count == 2, "\(output)")
        let typed = parts[0], fstab = parts.count == 2 ? parts[1] : ""
        // mount -t: mount.fuse3 ran `mdevsim SCENARIO MOUNTPOINT -o strict,default_permissions,dev,suid`.
        #expect(typed.contains("rc=0") && typed.contains("umount rc=0"), "\(typed)")
        #expect(typed.contains(" - fuse.mdevsim \(scenario) "), "the source is the scenario: \(typed)")
        #expect(typed.contains("default_permissions"))
        #expect(!typed.contains("mdevsim-default"), "the scenario's types, not the default's")
        // fstab: mount(8) read the line; `default` is the built-in default scenario.
        #expect(fstab.contains("rc=0") && fstab.contains("umount rc=0"), "\(fstab)")
        #expect(fstab.contains(" - fuse.mdevsim default ") && fstab.contains("allow_other"), "\(fstab)")
        #expect(fstab.contains("mdevsim-default"))
        let pids = Self.daemonPIDs(output)
        #expect(pids.count == 2, "\(output)")
        #expect(Self.waitGone(pids), "each daemon exits after umount")
        #expect(MountHelpers.status(of: mp.path) == .notMounted)
    }

    @Test func mdevctlTypesListStartStopDefine() throws {
        let fixture = try MountFixture(smallScenario(instances: 4))
        defer { fixture.close() }
        let parent = fixture.mount.filesystem.parent
        let etc = try RunMountpoint(prefix: "/tmp/mdevsim-mdevctl.")
        defer { _ = try? runTool("/bin/rm", ["-rf", etc.path]) }
        let (u1, u2) = ("8a1e9d62-5c8b-4f3e-9b7a-1c2d3e4f5a6b", "c0ffee00-1111-4222-8333-444455556666")
        // The recipe of docs/vmm-guide.md ("mdevctl"), then each command once.
        let script = """
            set -u
            M=$1; etc=$2; P=$3; T=$4; U1=$5; U2=$6
            \(Self.bindRecipe)
            mkdir -p "$etc/scripts.d/callouts" "$etc/scripts.d/notifiers"
            mount --bind "$etc" /etc/mdevctl.d || exit 93
            echo "== types"; mdevctl types; echo "rc=$?"
            echo "== start"; mdevctl start -u $U1 -p $P --type $T; echo "rc=$?"
            echo "== list"; mdevctl list; echo "rc=$?"
            echo "== stop"; mdevctl stop -u $U1; echo "rc=$?"
            echo "== list-empty"; mdevctl list; echo "rc=$?"
            echo "== define"; mdevctl define -u $U2 -p $P --type $T; echo "rc=$?"
            echo "== list-defined"; mdevctl list --defined; echo "rc=$?"
            echo "== start-defined"; mdevctl start -u $U2; echo "rc=$?"
            echo "== list-active"; mdevctl list; echo "rc=$?"
            echo "== end"
            """
        let (status, output) = try Self.inPrivateNamespace(script, [fixture.path, etc.path, parent, fixture.typeName, u1, u2])
        #expect(status == 0, "\(output)")
        func section(_ name: String) -> String {
            guard let start = output.range(of: "== \(name)\n") else { return "" }
            let rest = output[start.upperBound...]
            return String(rest[..<(rest.range(of: "\n== ")?.lowerBound ?? rest.endIndex)])
        }
        #expect(section("types").hasPrefix("""
            \(parent)
              mdevsim-test
                Available instances: 4
                Device API: vfio-pci
                Name: mdevsim-test
                Description: mdevsim simulated device
            """), "\(section("types"))")
        #expect(section("types").contains("  mdevsim-test-small-section\n    Available instances: 4\n"))
        #expect(section("start").hasSuffix("rc=0"), "\(section("start"))")
        #expect(section("list").contains("\(u1) \(parent) mdevsim-test"), "\(section("list"))")
        #expect(section("stop").hasSuffix("rc=0"), "\(section("stop"))")
        #expect(!section("list-empty").contains(u1), "\(section("list-empty"))")
        #expect(section("define").hasSuffix("rc=0"), "\(section("define"))")
        #expect(section("list-defined").contains("\(u2) \(parent) mdevsim-test manual"), "\(section("list-defined"))")
        #expect(section("start-defined").hasSuffix("rc=0"), "\(section("start-defined"))")
        #expect(section("list-active").contains("\(u2) \(parent) mdevsim-test manual (defined)"), "\(section("list-active"))")
        // The effects, seen in the mount itself: U1 came and went, U2 is there; the definition
        // is in the temporary /etc/mdevctl.d, as mdevctl writes it.
        #expect(fixture.mount.filesystem.device(u1) == nil)
        #expect(fixture.mount.filesystem.device(u2) != nil)
        #expect(FileManager.default.fileExists(atPath: "\(fixture.path)/devices/\(u2)/migration"))
        let definition = try String(contentsOfFile: "\(etc.path)/\(parent)/\(u2)", encoding: .utf8)
        #expect(definition.contains("\"mdev_type\": \"mdevsim-test\""), "\(definition)")
        #expect(fixture.read("mdev_supported_types/mdevsim-test/available_instances") == "3\n")
    }

    /// docs/vmm-guide.md's recipe: /sys/class/mdev_bus and /sys/bus/mdev/devices as bind mounts
    /// of the mount's tree ($M), in this namespace. Where the host has no mdev module the two
    /// directories do not exist and sysfs cannot make them: a tmpfs over /sys/class and
    /// /sys/bus (in this namespace only) holds them.
    static let bindRecipe = """
        for d in class/mdev_bus bus/mdev/devices; do
            [ -d /sys/$d ] || { mount -t tmpfs mdevsim-sys /sys/${d%%/*} && mkdir -p /sys/$d; } || exit 95
            mount --bind "$M/$d" /sys/$d || exit 94
        done
        """
}

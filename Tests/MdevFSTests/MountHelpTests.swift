import Conformance
import Foundation
import FUSEKit
import Glibc
import Testing

/// `mdevsim mount --help` tells the truth: its tree block is the mount's tree (every file,
/// every link target, nothing missing), unwrapped, and README.md and docs/vmm-guide.md show
/// the same block.
@Suite(.serialized) struct MountHelpTests {
    static let first = "MOUNT/mdev_supported_types/<type>/"
    static let last = "MOUNT/bus/mdev/devices/<uuid> -> ../../../class/mdev_bus/<parent>/<uuid>"

    /// The lines from `first` to `last`, with the indentation they have in `text` removed.
    static func block(in text: String) -> [String]? {
        let lines = text.components(separatedBy: "\n")
        guard let start = lines.firstIndex(where: { $0.hasSuffix(first) }),
              let end = lines[start...].firstIndex(where: { $0.hasSuffix(last) }) else { return nil }
        let indent = lines[start].count - first.count
        return lines[start...end].map { String($0.dropFirst(indent)) }
    }

    @Test func helpShowsTheTreeAsTheMountHasIt() throws {
        let (status, help) = try MountCommandTests.mdevsim(["mount", "--help"])
        #expect(status == 0)
        #expect(help.contains("uuid=$(cat /proc/sys/kernel/random/uuid)") && !help.contains("uuidgen"))
        let block = try #require(Self.block(in: help), "\(help)")
        for name in ["README.md", "docs/vmm-guide.md"] {
            let text = try String(contentsOf: MountCLITests.repository.appendingPathComponent(name), encoding: .utf8)
            #expect(Self.block(in: text) == block, "\(name) shows the same tree as mount --help")
        }

        let mp = try RunMountpoint(prefix: "/tmp/mdevsim-help.")
        defer { mp.remove() }
        let (mounted, output) = try MountCommandTests.mdevsim(["mount", mp.path])
        #expect(mounted == 0, "\(output)")
        defer { _ = try? MountCommandTests.mdevsim(["unmount", mp.path]) }
        let uuid = UUID().uuidString.lowercased()
        try FileTransport.writeText(uuid, to: "\(mp.path)/mdev_supported_types/mdevsim-default/create")
        func real(_ s: String) -> String {
            s.replacingOccurrences(of: "MOUNT", with: mp.path).replacingOccurrences(of: "<type>", with: "mdevsim-default")
                .replacingOccurrences(of: "<uuid>", with: uuid).replacingOccurrences(of: "<N>", with: "1000")
                .replacingOccurrences(of: "<parent>", with: "0000:00:00.0")
        }
        // Each directory of the block, with the entries the block gives it.
        var entries: [String: Set<String>] = [:]
        var directory = ""
        for line in block {
            if !line.hasPrefix(" ") {
                let parts = line.components(separatedBy: " -> ")
                if parts.count == 2 {
                    #expect(try FileManager.default.destinationOfSymbolicLink(atPath: real(parts[0])) == real(parts[1]), "\(line)")
                } else {
                    directory = real(line)
                    entries[directory, default: []] = []
                }
                continue
            }
            let item = line.trimmingCharacters(in: .whitespaces)
            let parts = item.components(separatedBy: " -> ")
            if parts.count == 2 {
                #expect(try FileManager.default.destinationOfSymbolicLink(atPath: directory + real(parts[0])) == real(parts[1]), "\(line)")
                entries[directory, default: []].insert(String(parts[0].prefix { $0 != "/" }))
            } else {
                for name in item.split(separator: " ") { entries[directory, default: []].insert(String(name)) }
            }
        }
        #expect(entries.count == 5)
        for (dir, names) in entries {
            let listed = Set(try FileManager.default.contentsOfDirectory(atPath: dir))
            if dir.hasSuffix("iommu_groups/1000/") {
                #expect(listed.isEmpty)
            } else if dir.hasSuffix("/0000:00:00.0/\(uuid)/") || dir.hasSuffix("/devices/\(uuid)/") || dir.hasSuffix("/mdevsim-default/") {
                #expect(listed == names, "\(dir): the mount has \(listed.sorted()), the help says \(names.sorted())")
            } else {
                Issue.record("a directory the test does not know: \(dir)")
            }
        }
    }
}

@testable import Scenarios
import Testing

/// The diagnostics of `yaml` (as file `x.yaml`), or `["ok"]` when it validates.
func diagnose(_ yaml: String) -> [String] {
    do {
        _ = try ScenarioLoader.parse(yaml, file: "x.yaml")
        return ["ok"]
    } catch {
        return error.diagnostics.map(\.description)
    }
}

/// A valid scenario with one type `t1`, whose type mapping ends with `extra` (indented 4).
func oneType(_ extra: String, tail: String = "") -> String {
    """
    name: t
    types:
      - type: t1
        memory: 4MiB

    """ + extra.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "    " + $0 }.joined(separator: "\n") + "\n" + tail
}

@Suite struct DiagnosticTests {
    @Test func validMinimalScenario() throws {
        let scenario = try ScenarioLoader.parse(oneType(""))
        let type = try #require(scenario.types.first)
        #expect(type.instances == 16)
        #expect(type.configuration.memorySize == 4 << 20)
        #expect(scenario.migration.source == "t1" && scenario.migration.destination == "t1")
        #expect(scenario.migration.client.access == .mmap)
        #expect(scenario.expectation == Expectation())
        #expect(type.configuration.contentSeed == Scenario.combinedSeed(scenario: 1, content: 1))
    }

    @Test func unknownKeySuggestsClosest() {
        #expect(diagnose(oneType("chunksize: 64KiB")) == [
            "x.yaml:5:5: error: unknown key 'chunksize' in a device type; did you mean 'chunk_size'?",
        ])
        #expect(diagnose("name: t\ntypes:\n  - type: a\nmigraton: {}\n") == [
            "x.yaml:4:1: error: unknown key 'migraton' in a scenario; did you mean 'migration'?",
        ])
        #expect(diagnose(oneType("zzz: 1")) == [
            "x.yaml:5:5: error: unknown key 'zzz' in a device type; expected one of type, instances, memory, page_size, content_seed, fill, config_size, data_section, mmap, chunk_size, precopy, dirty, link_bandwidth, clock, reserved_state_bits, faults, pci, dma, protocols, v2",
        ])
    }

    @Test func pciIdentity() throws {
        let declared = try ScenarioLoader.parse(oneType("pci: {vendor_id: 0x10de, device_id: 0x1eb8, class_code: 0x030200, revision: 0xa1}"))
        let id = try #require(declared.types.first).pci
        #expect(id == PCIIdentity(vendorID: 0x10de, deviceID: 0x1eb8, subsystemVendorID: 0x10de, subsystemID: 0x1eb8,
                                  classCode: 0x030200, revision: 0xa1))
        #expect(try ScenarioLoader.parse(oneType("")).types.first?.pci == .default)
        #expect(diagnose(oneType("pci: {vendor_id: 0x10000}")) == [
            "x.yaml:5:22: error: pci.vendor_id: expected a 16-bit id (0...0xffff), got 0x10000",
        ])
        #expect(diagnose(oneType("pci: {vendor_id: 0xffff}")) == [
            "x.yaml:5:22: error: pci.vendor_id: expected a vendor id other than 0xffff (it means 'no device'), got 0xffff",
        ])
        #expect(diagnose(oneType("pci: {class: 3}")).first?.contains("unknown key") == true)
    }

    @Test func dmaSpec() throws {
        let scenario = try ScenarioLoader.parse(oneType("dma: {address: 64MiB, size: 1MiB, rate: 16MiB/s}"))
        let dma = try #require(scenario.types.first?.dma)
        #expect(dma.address == 64 << 20 && dma.size == 1 << 20 && dma.rate == 16 << 20)
        #expect(try ScenarioLoader.parse(oneType("")).types.first?.dma == nil)
        #expect(diagnose(oneType("dma: {address: 1000B, size: 1MiB, rate: 1MiB/s}")) == [
            "x.yaml:5:20: error: dma.address: expected a multiple of 4KiB, got 1000B",
        ])
        #expect(diagnose(oneType("dma: {address: 0, size: 1GiB, rate: 1MiB/s}")) == [
            "x.yaml:5:29: error: dma.size: expected a multiple of 4KiB up to 256MiB, got 1GiB",
        ])
        #expect(diagnose(oneType("dma: {address: 0, size: 1MiB}")).first?.contains("missing key 'rate'") == true)
    }

    @Test func wrongUnits() {
        #expect(diagnose(oneType("config_size: 4MB")) == [
            "x.yaml:5:18: error: config_size: expected a size with a unit (B, KiB, MiB, GiB, TiB), got 4MB",
        ])
        #expect(diagnose(oneType("config_size: 4096")) == [
            "x.yaml:5:18: error: config_size: expected a size with a unit (B, KiB, MiB, GiB, TiB), got 4096",
        ])
        #expect(diagnose(oneType("link_bandwidth: 1GiB")) == [
            "x.yaml:5:21: error: link_bandwidth: expected a rate with a unit per second (B/s, KiB/s, MiB/s, GiB/s, TiB/s), got 1GiB",
        ])
        #expect(diagnose(oneType("dirty: {rate: 5ms}")) == [
            "x.yaml:5:19: error: dirty.rate: expected a rate with a unit per second (B/s, KiB/s, MiB/s, GiB/s, TiB/s), got 5ms",
        ])
        #expect(diagnose(oneType("faults:\n  - when: {enter: running}\n    action: {stall: 5}")) == [
            "x.yaml:7:25: error: stall: expected a duration with a unit (ns, us, ms, s), got 5",
        ])
    }

    @Test func zeroOrNegativeSizes() {
        #expect(diagnose(oneType("page_size: 0")) == ["x.yaml:5:16: error: page_size: expected a size above 0, got 0"])
        #expect(diagnose(oneType("data_section: -4KiB")) == [
            "x.yaml:5:19: error: data_section: expected a size with a unit (B, KiB, MiB, GiB, TiB), got -4KiB",
        ])
        #expect(diagnose(oneType("link_bandwidth: 0")) == ["x.yaml:5:21: error: link_bandwidth: expected a rate above 0, got 0"])
        #expect(diagnose(oneType("instances: 0")) == ["x.yaml:5:16: error: instances: expected an integer in 1...4096, got 0"])
    }

    @Test func engineRulesAtTheirKeys() {
        #expect(diagnose(oneType("data_section: 1MiB\nchunk_size: 2MiB")) == [
            "x.yaml:6:17: error: chunk_size: expected at most the data section (1MiB), got 2MiB",
        ])
        #expect(diagnose(oneType("chunk_size: 1KiB")) == [
            "x.yaml:5:17: error: chunk_size: expected at least 4176B (the chunk record and one page record), got 1KiB",
        ])
        #expect(diagnose(oneType("page_size: 3KiB")) == [
            "x.yaml:5:16: error: page_size: expected a power of two from 512B to 2MiB, got 3KiB",
        ])
        #expect(diagnose(oneType("mmap: true\ndata_section: 1000B\nchunk_size: 1000B")) == [
            "x.yaml:6:19: error: data_section: expected a multiple of 4KiB when mmap is on, got 1000B",
            "x.yaml:7:17: error: chunk_size: expected at least 4176B (the chunk record and one page record), got 1000B",
        ])
        // Every broken rule in one pass, each at its key.
        #expect(diagnose(oneType("memory: 4098KiB\nconfig_size: 65MiB\ndata_section: 2GiB").replacingOccurrences(of: "    memory: 4MiB\n", with: "")) == [
            "x.yaml:4:13: error: memory: expected a multiple of the page size (4KiB), got 4098KiB",
            "x.yaml:5:18: error: config_size: expected at most 64MiB, got 65MiB",
            "x.yaml:6:19: error: data_section: expected at most 1GiB, got 2GiB",
        ])
        // A default that no longer fits is reported at the type, naming the key.
        #expect(diagnose(oneType("data_section: 64KiB")) == [
            "x.yaml:3:5: error: chunk_size (default): expected at most the data section (64KiB), got 1MiB",
        ])
        #expect(diagnose(oneType("memory: 0\ndirty: {rate: 1MiB/s}").replacingOccurrences(of: "    memory: 4MiB\n", with: "")) == [
            "x.yaml:5:19: error: dirty.rate: expected 0B/s for a device with no memory, got 1MiB/s",
        ])
    }

    @Test func duplicateTypesAndUnknownDestination() {
        #expect(diagnose("name: t\ntypes:\n  - type: a\n  - type: a\n") == [
            "x.yaml:4:11: error: type: duplicate type name 'a' (first at line 3)",
        ])
        #expect(diagnose("name: t\ntypes:\n  - type: alpha\n  - type: beta\nmigration:\n  destination: alpah\n") == [
            "x.yaml:6:16: error: destination: unknown type 'alpah'; did you mean 'alpha'?",
        ])
        #expect(diagnose("name: t\ntypes:\n  - type: alpha\nmigration:\n  source: gamma\n") == [
            "x.yaml:5:11: error: source: unknown type 'gamma'; the scenario's types are alpha",
        ])
    }

    @Test func faultsThatCanNeverFire() {
        #expect(diagnose(oneType("precopy: false\nfaults:\n  - when: {chunk: 1, phase: pre-copy}\n    action: {fail: EIO}")) == [
            "x.yaml:7:33: error: phase: a device with precopy: false sends no pre-copy chunks; this trigger can never fire",
        ])
        // 64KiB of 4KiB pages: 16 page records of 4128 bytes fit one 1MiB chunk with the header.
        #expect(diagnose("name: t\ntypes:\n  - type: t1\n    memory: 64KiB\n    faults:\n      - when: {chunk: 2, phase: pre-copy}\n        action: {fail: EIO}\n") == [
            "x.yaml:6:23: error: chunk: expected at most 1 (the pre-copy chunks this device produces without dirtying: 64KiB memory, 4KiB pages, 1MiB chunks), got 2",
        ])
        #expect(diagnose(oneType("faults:\n  - when: {from: stop-and-copy, to: pre-copy}\n    action: {fail: EIO}")) == [
            "x.yaml:6:16: error: when: the transition table rejects stop-and-copy -> pre-copy (choice: rejected; the final copy has begun, restarting the device inside the same save would make it not final (QEMU goes back through 001)); this trigger can never fire",
        ])
        #expect(diagnose(oneType("faults:\n  - when: {enter: error}\n    action: {fail: EIO}")) == [
            "x.yaml:6:23: error: enter: the transition table rejects every write of error (6); this trigger can never fire",
        ])
        #expect(diagnose(oneType("chunk_size: 64KiB\ndata_section: 64KiB\nfaults:\n  - when: {chunk: 1, phase: pre-copy}\n    action: {corrupt: {offset: 64KiB, count: 8B}}")) == [
            "x.yaml:9:36: error: offset: expected a range inside the chunk size (64KiB), got offset 64KiB count 8B",
        ])
        #expect(diagnose(oneType("faults:\n  - when: {access: reserved, op: read}\n    action: {fail: EIO}")) == [
            "x.yaml:7:17: error: action: the reserved field reads 0 and ignores writes, so a fail action on it can never take effect; trigger on another field",
        ])
        #expect(diagnose(oneType("faults:\n  - when: {access: data_offset, op: write}\n    action: {fail: EIO}")) == [
            "x.yaml:6:41: error: op: data_offset is read-only; a write trigger on it can never fire",
        ])
        #expect(diagnose(oneType("faults:\n  - when: {chunk: 1, phase: resuming}\n    action: {fail: EIO}\n    role: source")) == [
            "x.yaml:6:33: error: phase: resuming chunks happen only on a destination; with role: source this trigger can never fire",
        ])
    }

    @Test func faultSyntax() {
        #expect(diagnose(oneType("faults:\n  - when: {enter: pre-copy}\n    action: {fail: EIOO}")) == [
            "x.yaml:7:24: error: fail: expected an errno name (EIO, EINVAL, EAGAIN, ENOMEM, EBUSY, ENOSPC, EFAULT, EPERM, ENODEV, ETIMEDOUT, ...), got EIOO",
        ])
        #expect(diagnose(oneType("faults:\n  - when: {enter: pre-copy}\n    action: stal")) == [
            "x.yaml:7:17: error: action: unknown action 'stal'; did you mean 'stall'?",
        ])
        #expect(diagnose(oneType("faults:\n  - when: {enter: pre-copy, chunk: 2}\n    action: oversize_data_size")) == [
            "x.yaml:6:15: error: when: expected exactly one of access, enter, from/to, chunk, bytes; got enter, chunk",
        ])
        #expect(diagnose(oneType("faults:\n  - name: a\n    when: {enter: pre-copy}\n    action: oversize_data_size\n  - name: a\n    when: {enter: running}\n    action: oversize_data_size")) == [
            "x.yaml:9:15: error: name: duplicate fault name 'a' (first at line 6)",
        ])
    }

    @Test func migrationAndExpectation() {
        #expect(diagnose(oneType("mmap: false\ndata_section: 64KiB\nchunk_size: 64KiB", tail: "migration:\n  client:\n    access: mmap\n")) == [
            "x.yaml:10:13: error: access: expected pread or pread8: the data section of the source is not mmapable (mmap: false), got mmap",
        ])
        #expect(diagnose(oneType("", tail: "expect:\n  cancelled: true\n")) == [
            "x.yaml:7:14: error: cancelled: true needs migration.client.cancel_in_precopy_after",
        ])
        #expect(diagnose(oneType("", tail: "expect:\n  outcome: failure\n  step: data_offset peek\n")) == [
            "x.yaml:8:9: error: step: expected '<field> read|write [in <state>]', 'data read|write [in <state>]' or '<state> -> <state>', got data_offset peek",
        ])
        #expect(diagnose(oneType("", tail: "expect:\n  outcome: failure\n")) == [
            "x.yaml:7:3: error: missing key 'step' in expect with outcome: failure",
        ])
        #expect(diagnose(oneType("", tail: "expect:\n  errno: EIO\n")) == [
            "x.yaml:7:3: error: errno: only with outcome: failure",
        ])
    }

    @Test func parsedExpectation() throws {
        let scenario = try ScenarioLoader.parse(oneType("", tail: "expect:\n  outcome: failure\n  errno: EIO\n  step: data_offset read in stop-and-copy\n  min_precopy_iterations: 2\n  converges: false\n"))
        #expect(scenario.expectation == Expectation(
            outcome: .failure(errno: .ioError, step: .access(field: .dataOffset, operation: .read, state: 0b010)),
            minPrecopyIterations: 2, converges: false
        ))
        let transition = try ScenarioLoader.parse(oneType("", tail: "expect:\n  outcome: failure\n  step: running -> pre-copy\n"))
        #expect(transition.expectation.outcome == .failure(errno: nil, step: .transition(from: 1, to: 3)))
        #expect(FailureStep.transition(from: 1, to: 3).description == "running -> pre-copy")
    }

    @Test func malformedInput() {
        #expect(diagnose("") == ["x.yaml:1:1: error: empty file: expected a scenario (a mapping with name, types, ...)"])
        #expect(diagnose("- just\n- a list\n") == ["x.yaml:1:1: error: expected a scenario (a mapping), got a list"])
        #expect(diagnose("name: [unclosed\n") == [
            "x.yaml:2:1: error: malformed YAML: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 7)",
        ])
        #expect(diagnose("name: a\nname: b\n") == ["x.yaml:1:1: error: duplicate key 'name' in a mapping"])
        #expect(diagnose("name: t\n") == ["x.yaml:1:1: error: missing key 'types' in the scenario"])
        #expect(diagnose("name: t\u{0}\n") == ["x.yaml:1:8: error: not valid YAML text: control characters are not allowed"])
    }

    @Test func binaryGarbage() {
        let bytes: [UInt8] = [0x6E, 0x61, 0x0A, 0x00, 0xFF, 0xFE]
        #expect(throws: ScenarioError(diagnostics: [
            Diagnostic(file: "g.bin", line: 2, column: 2, message: "not UTF-8 text: expected a YAML scenario, found an invalid byte"),
        ])) {
            try ScenarioLoader.parse(bytes: bytes, file: "g.bin")
        }
    }
}

/// Every diagnostic in one pass: an unknown key does not hold back the checks of the values beside it.
@Suite struct OnePassDiagnosticTests {
    @Test func anUnknownKeyAndASemanticErrorAreReportedTogetherInOrder() {
        let yaml = oneType("data_section: 1MiB\nchunk_size: 3MiB\ndirty:\n  rate: 1MiB/s\n  foo: 1")
        let d = diagnose(yaml)
        #expect(d.count == 2, "\(d)")
        #expect(d.first?.contains("chunk_size: expected at most the data section") == true, "\(d)")
        #expect(d.last?.contains("unknown key 'foo' in dirty") == true, "\(d)")
        #expect(Set(d).count == d.count, "each diagnostic once")
    }
}

/// The step grammar accepts only steps a run can report (`FailureStep.reportableAccesses`).
@Suite struct StepGrammarTests {
    static func expecting(_ step: String) -> String {
        oneType("faults:\n  - {name: f, when: {chunk: 1, phase: stop-and-copy}, action: {fail: EIO}}",
                tail: "expect:\n  outcome: failure\n  errno: EIO\n  step: \(step)\n")
    }

    @Test func stepsTheRunnerCannotReportAreRefused() {
        let write = diagnose(Self.expecting("device_state write in running"))
        #expect(write.count == 1 && write[0].contains("a device_state write is reported as its transition"), "\(write)")
        let never = diagnose(Self.expecting("pending_bytes write"))
        #expect(never.count == 1 && never[0].contains("the client never does 'pending_bytes write'"), "\(never)")
        #expect(diagnose(Self.expecting("reserved read")).first?.contains("never does 'reserved read'") == true)
        for ok in ["data_offset read in stop-and-copy", "data_size write in resuming", "running -> pre-copy", "data read"] {
            let d = diagnose(Self.expecting(ok))
            #expect(!d.contains { $0.contains("step:") }, "\(ok): \(d)")
        }
    }
}

import Foundation
import Glibc
import Scenarios
import Testing
import TestSupport

/// What one two-QEMU migration showed.
struct MigrationRun {
    var info: [String: Any] = [:]
    var status: String { info["status"] as? String ?? "?" }
    var sourceDigestBefore = ""
    var sourceDigestAfter = ""
    var destinationDigestAfter = ""
    var sourceWrites: [UInt32] = []
    var destinationWrites: [UInt32] = []
    var sourceRunStateAfter = ""
    var destinationRunStateAfterCont: String?
    var sourceState: [String: Any] = [:]
    var destinationState: [String: Any] = [:]
    var sourceViolations: [String] = []
    var destinationViolations: [String] = []
    /// Migration v2: the states QEMU SET (shim log) and every state each device entered (the
    /// mount's mig_state_log: each arc of each walk, from creation); empty for a v1 QEMU.
    var sourceSets: [String] = []
    var destinationSets: [String] = []
    var sourceStateLog = ""
    var destinationStateLog = ""
    var sourceShimLog = ""
    var sourceOutput = ""
    var destinationOutput = ""
    var seconds: Double = 0
    /// Guest memory saved with `pmemsave` once migration ended (destination: before `cont`).
    var sourceMemory = Data()
    var destinationMemory = Data()

    func figure(_ key: String) -> Int { (info[key] as? NSNumber)?.intValue ?? -1 }
}

/// Live-migrates a guest that carries one device of `type` between two QEMU 7.2 (or `qemu`)
/// processes on 127.0.0.1, through libmdevsim-vfio.so; `cont` on the destination once migration
/// completed. `parameters` go to the source's migrate-set-parameters, `capabilities` are switched
/// on on both sides, `extraArguments` given to both QEMUs. With `cancelAfter`,
/// `migrate_cancel` once the migration has been active that long.
/// Both QEMUs and the mount are always stopped.
func migrateWithQEMU(_ scenario: Scenario, type: String, pausedSource: Bool, bounce: Bool = false,
                     environment: [String: String] = [:], guestRange: (address: UInt64, size: UInt64)? = nil,
                     maxBandwidth: UInt64? = nil, parameters: [String: Any] = [:], qemu: QEMUBuild = .qemu7,
                     migrationSwitch: String? = nil, capabilities: [String] = [], extraArguments: [String] = [],
                     cancelAfter: TimeInterval? = nil) throws -> MigrationRun {
    let mount = try QEMUMount(scenario)
    defer { mount.close() }
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let sourceUUID = try mount.createDevice(type: type)
    let destinationUUID = try mount.createDevice(type: type)
    let port = try freePort()
    let source = try QEMUInstance(name: "source", directory: directory, mount: mount, uuid: sourceUUID,
                                  paused: pausedSource, bounce: bounce, environment: environment, qemu: qemu,
                                  migrationSwitch: migrationSwitch, extraArguments: extraArguments)
    defer { source.stop() }
    // The destination stays paused after the incoming migration until `cont`.
    let destination = try QEMUInstance(name: "destination", directory: directory, mount: mount, uuid: destinationUUID,
                                       paused: true, incomingPort: port, bounce: bounce, environment: environment, qemu: qemu,
                                       migrationSwitch: migrationSwitch, extraArguments: extraArguments)
    defer { destination.stop() }

    var run = MigrationRun()
    let sourceQMP: QMPClient
    let destinationQMP: QMPClient
    do {
        sourceQMP = try QMPClient(socket: source.qmpPath)
        destinationQMP = try QMPClient(socket: destination.qmpPath)
    } catch {
        throw HarnessError("\(error)\nsource: \(source.output)\ndestination: \(destination.output)")
    }
    run.sourceDigestBefore = mount.read(sourceUUID, "digest")
    if let maxBandwidth { try sourceQMP.execute("migrate-set-parameters", ["max-bandwidth": maxBandwidth]) }
    if !parameters.isEmpty { try sourceQMP.execute("migrate-set-parameters", parameters) }
    if !capabilities.isEmpty {
        let list = capabilities.map { ["capability": $0, "state": true] as [String: Any] }
        for qmp in [sourceQMP, destinationQMP] { try qmp.execute("migrate-set-capabilities", ["capabilities": list]) }
    }
    let start = Date()
    try sourceQMP.execute("migrate", ["uri": "tcp:127.0.0.1:\(port)"])
    let deadline = Date().addingTimeInterval(90)
    var cancelled = false
    while true {
        run.info = try sourceQMP.object("query-migrate")
        if ["completed", "failed", "cancelled"].contains(run.status) { break }
        if let cancelAfter, !cancelled, run.status == "active", Date().timeIntervalSince(start) >= cancelAfter {
            try sourceQMP.execute("migrate_cancel")
            cancelled = true
        }
        if Date() > deadline { throw HarnessError("migration still \(run.status) after 90 s") }
        usleep(50_000)
    }
    run.seconds = Date().timeIntervalSince(start)
    run.sourceDigestAfter = mount.read(sourceUUID, "digest")
    run.sourceRunStateAfter = try sourceQMP.object("query-status")["status"] as? String ?? "?"
    if run.status == "completed" {
        // The source completes once it has sent everything: on a loaded machine the destination
        // may still be loading the last pages (a pmemsave then misses them). Its own
        // query-migrate says when its incoming migration is done.
        let loaded = Date().addingTimeInterval(30)
        while (try destinationQMP.object("query-migrate")["status"] as? String) != "completed", Date() < loaded { usleep(20_000) }
        if let guestRange {
            for (qmp, name) in [(sourceQMP, "source"), (destinationQMP, "destination")] {
                let file = "\(directory)/\(name).pmem"
                try qmp.execute("pmemsave", ["val": guestRange.address, "size": guestRange.size, "filename": file])
                let data = try Data(contentsOf: URL(fileURLWithPath: file))
                if name == "source" { run.sourceMemory = data } else { run.destinationMemory = data }
            }
        }
        try destinationQMP.execute("cont")
        run.destinationRunStateAfterCont = try destinationQMP.object("query-status")["status"] as? String
    } else {
        // A failed incoming migration makes the destination QEMU exit by itself.
        _ = destination.waitForExit(timeout: 10)
    }
    run.destinationDigestAfter = mount.read(destinationUUID, "digest")
    run.sourceState = mount.state(sourceUUID)
    run.destinationState = mount.state(destinationUUID)
    run.sourceViolations = mount.violationRules(sourceUUID)
    run.destinationViolations = mount.violationRules(destinationUUID)
    // The sequences up to here: before `quit`, whose own writes are not part of the migration.
    run.sourceWrites = source.stateWrites
    run.destinationWrites = destination.stateWrites
    run.sourceSets = source.v2Sets
    run.destinationSets = destination.v2Sets
    run.sourceStateLog = mount.read(sourceUUID, "mig_state_log")
    run.destinationStateLog = mount.read(destinationUUID, "mig_state_log")
    run.sourceShimLog = source.shimLog
    run.sourceOutput = source.output
    run.destinationOutput = destination.output
    for (qmp, instance) in [(sourceQMP, source), (destinationQMP, destination)] where instance.process.isRunning {
        _ = try? qmp.execute("quit")
        _ = instance.waitForExit(timeout: 10)
    }
    return run
}

/// Device DMA, migrated by `qemu`: the running source device rewrites 1 MiB of guest RAM
/// through QEMU's DMA mappings (64 MiB of device state keep pre-copy long enough for many
/// rewrites after the range's first transfer); reported, the range is byte-identical on both
/// sides (QMP pmemsave: source at completion, destination before `cont`); unreported, the ranges
/// differ, which shows the check can fail. The type speaks v1, and v2 for QEMU 10, which gets the
/// pages by device DMA logging (with its default enable-migration=auto, which needs it) or, with
/// the shim's logging off, through the container's VFIO_IOMMU_DIRTY_PAGES (as QEMU 7.2).
func migrateDeviceDMA(reported: Bool, qemu: QEMUBuild, deviceLogging: Bool = false) throws {
    let scenario = try ScenarioLoader.parse("""
        name: qemu-dma
        types:
          - type: mdevsim-dma
            memory: 64MiB
            dma: {address: 64MiB, size: 1MiB, rate: 64MiB/s}
        \(qemu == .qemu10 ? "    protocols: [v1, v2]" : "")
        """)
    var environment = reported ? [:] : ["MDEVSIM_VFIO_DMA_UNREPORTED": "1"]
    if qemu == .qemu10 && !deviceLogging { environment["MDEVSIM_VFIO_DMA_LOGGING"] = "0" }
    let run = try migrateWithQEMU(scenario, type: "mdevsim-dma", pausedSource: false, environment: environment,
                                  guestRange: (64 << 20, 1 << 20), qemu: qemu,
                                  migrationSwitch: deviceLogging ? "enable-migration=auto" : nil)
    #expect(run.status == "completed", "\(run.info)")
    #expect(run.sourceDigestAfter == run.destinationDigestAfter)
    #expect(run.sourceMemory.count == 1 << 20 && run.destinationMemory.count == 1 << 20)
    #expect(run.sourceMemory.contains { $0 != 0 }, "the device wrote the guest range")
    // The path the pages took: the container's bitmap, or the device's DMA log.
    #expect(run.sourceShimLog.contains("FEATURE DMA_LOGGING_START SET -> ok") == deviceLogging)
    // Compared as a count of differing pages: a failing `==` of two 1 MiB `Data` has Swift
    // Testing diff them for its message, which takes longer than the suite (it once hung CI).
    let (source, destination) = ([UInt8](run.sourceMemory), [UInt8](run.destinationMemory))
    let pages = min(source.count, destination.count) / 4096
    let differing = (0..<pages).filter { p in source[(p * 4096)..<((p + 1) * 4096)] != destination[(p * 4096)..<((p + 1) * 4096)] }
    if reported {
        #expect(run.sourceShimLog.contains("pages dirty (device DMA)"))
        #expect(run.sourceShimLog.contains("DMA_LOGGING_REPORT") == deviceLogging)
        #expect(differing.isEmpty, "the destination has every page the device wrote: \(differing.count) of \(pages) pages differ, the first \(differing.prefix(8)); source shim log:\n\(run.sourceShimLog.suffix(3000))")
    } else {
        #expect(!run.sourceShimLog.contains("pages dirty (device DMA)"))
        #expect(!differing.isEmpty, "unreported DMA writes are lost")
    }
}

func loadScenario(_ file: String) throws -> Scenario {
    try ScenarioLoader.load(contentsOf: .init(repositoryDirectory.appendingPathComponent("scenarios/\(file)").path))
}

/// Unmodified QEMU 7.2 migrating guests that carry an mdevsim device, through the VFIO shim.
/// Serialized: each test runs two TCG guests, and the machine has few cores.
@Suite(.serialized) struct QEMUMigrationTests {
    /// A running guest, with the data section mapped from the mount or through the shim's
    /// bounce buffer.
    @Test(arguments: [false, true])
    func runningGuestMigrates(bounce: Bool) throws {
        let run = try migrateWithQEMU(try loadScenario("default.yaml"), type: "mdevsim-default", pausedSource: false, bounce: bounce)
        #expect(run.status == "completed", "\(run.info)\n\(run.destinationOutput)")
        #expect(run.sourceDigestAfter.count == 64)
        #expect(run.sourceDigestAfter == run.destinationDigestAfter, "the destination resumed with the source's state")
        #expect(run.destinationRunStateAfterCont == "running")
        // Observed QEMU 7.2 sequence: its VM-start handler rewrites running (1 -> 1) at start,
        // then pre-copy (3), stop-and-copy (2) from the VM-stop handler and again from
        // save_complete (same state twice), stop (0). Destination: resuming (4), running (1).
        #expect(run.sourceWrites == [1, 3, 2, 2, 0], "source device_state writes")
        #expect(run.destinationWrites == [4, 1], "destination device_state writes")
        #expect(run.sourceState["state_name"] as? String == "stop")
        #expect(run.destinationState["state_name"] as? String == "running")
        #expect(run.sourceViolations.isEmpty, "\(run.sourceViolations)")
        #expect(run.destinationViolations.isEmpty, "\(run.destinationViolations)")
        let resume = run.destinationState["last_resume"] as? [String: Any]
        #expect(resume?["complete"] as? Bool == true)
        // The data path taken: the mount's pages, or one large pread per chunk into the bounce buffer.
        #expect(run.sourceShimLog.contains(bounce ? "-> bounce buffer" : "of the mount -> mapped"))
        #expect(run.sourceShimLog.contains("bounce fill") == bounce)
        #expect(run.sourceShimLog.contains("RESET -> ok"), "QEMU's system reset reached the device's reset file")
    }

    /// A device whose data section the mount does not offer for mmap (100000 bytes, not even
    /// page-sized): the shim still gives QEMU a mappable section, a bounce buffer it fills and
    /// drains with one pread/pwrite per chunk, so QEMU never falls back to 8-byte accesses.
    @Test func unmappableDataSectionGoesThroughTheBounceBuffer() throws {
        let run = try migrateWithQEMU(try loadScenario("mmap-off-pread.yaml"), type: "mdevsim-nommap", pausedSource: false)
        #expect(run.status == "completed", "\(run.info)\n\(run.destinationOutput)")
        #expect(run.sourceDigestAfter == run.destinationDigestAfter)
        #expect(run.sourceShimLog.contains("mount cannot map it"))
        #expect(run.sourceShimLog.contains("-> bounce buffer") && run.sourceShimLog.contains("bounce fill"))
        #expect(!run.sourceShimLog.contains("read data (8@"), "no 8-byte data-section access")
        #expect(run.sourceViolations.isEmpty && run.destinationViolations.isEmpty, "\(run.sourceViolations) \(run.destinationViolations)")
    }

    /// A guest that never ran (`-S`): QEMU never told the device to stop, so it goes from
    /// running straight to pre-copy (finding: the device of a paused guest is left running, and
    /// keeps dirtying its memory, until the migration stops it).
    @Test func pausedGuestMigrates() throws {
        let run = try migrateWithQEMU(try loadScenario("default.yaml"), type: "mdevsim-default", pausedSource: true)
        #expect(run.status == "completed", "\(run.info)\n\(run.destinationOutput)")
        #expect(run.sourceDigestAfter == run.destinationDigestAfter)
        #expect(run.sourceWrites == [3, 2, 0], "source device_state writes")
        #expect(run.destinationWrites == [4, 1], "destination device_state writes")
        #expect(run.sourceViolations.isEmpty && run.destinationViolations.isEmpty, "\(run.sourceViolations) \(run.destinationViolations)")
    }

    /// EIO on the data_offset read of the first stop-and-copy chunk: QEMU fails the migration,
    /// the guest and device keep running on the source, the source device is intact, and the
    /// destination device never runs.
    @Test func failedDataOffsetReadFailsMigrationAndSourceKeepsRunning() throws {
        let run = try migrateWithQEMU(try loadScenario("fault-fail-data-offset.yaml"), type: "mdevsim-eio", pausedSource: false)
        #expect(run.status == "failed", "\(run.info)")
        #expect(run.sourceRunStateAfter == "running")
        #expect(run.sourceState["state_name"] as? String == "running")
        #expect((run.sourceState["fired_faults"] as? [String]) == ["eio-first-final-chunk"])
        #expect(run.sourceDigestBefore == run.sourceDigestAfter, "the source device's memory is unchanged")
        #expect(run.destinationState["state_name"] as? String != "running")
        #expect(run.destinationDigestAfter != run.sourceDigestBefore)
        #expect(run.sourceShimLog.contains("read data_offset (8@16) -> Input/output error"))
        // Back to running after the failure: QEMU writes (state & ~SAVING) | RUNNING.
        #expect(run.sourceWrites.last == 1, "\(run.sourceWrites)")
        #expect(run.sourceViolations.isEmpty, "\(run.sourceViolations)")
    }

    /// Finding: QEMU 7.2's save_setup writes `(state & VFIO_DEVICE_STATE_MASK) | SAVING`, which
    /// clears the reserved bits 3-31 the device reported (the uapi says to preserve them). The
    /// device keeps its own bits and the checker records it; the migration still succeeds.
    @Test func qemuClearsReservedStateBitsOnSaveSetup() throws {
        let run = try migrateWithQEMU(try loadScenario("reserved-bits.yaml"), type: "mdevsim-reserved", pausedSource: false)
        #expect(run.status == "completed", "\(run.info)")
        #expect(run.sourceDigestAfter == run.destinationDigestAfter)
        #expect(run.sourceWrites.contains(3), "save_setup wrote pre-copy without the reserved bits: \(run.sourceWrites)")
        #expect(Set(run.sourceViolations) == ["reserved-bits"], "\(run.sourceViolations)")
        #expect(run.destinationViolations.isEmpty, "resume keeps them: \(run.destinationViolations)")
    }

    /// Device DMA: the running source device rewrites 1 MiB of guest RAM through QEMU's DMA
    /// mappings (64 MiB of device state keep pre-copy long enough for many rewrites after the
    /// range's first transfer); the shim reports those pages dirty, QEMU re-sends them, and the guest range is
    /// byte-identical on both sides (QMP pmemsave: source at completion, destination before
    /// `cont`). With the report switched off the ranges differ, which shows the check can fail.
    @Test(arguments: [true, false])
    func deviceDMAIntoGuestMemoryIsMigrated(reported: Bool) throws {
        try migrateDeviceDMA(reported: reported, qemu: .qemu7)
    }

    /// Figures for the README: QEMU's total time and downtime for 256 MiB of device state, the
    /// data section mapped from the mount against the shim's bounce buffer. Printed; checked
    /// only for success and equal digests (timings on a shared machine are not pass/fail).
    @Test func figuresFor256MiBOfDeviceState() throws {
        let scenario = try ScenarioLoader.parse("""
            name: qemu-256mib
            types:
              - type: mdevsim-256mib
                memory: 256MiB
                data_section: 1MiB
                chunk_size: 1MiB
            """)
        // QEMU's default max-bandwidth (128 MiB/s) would hide the data path: lift it.
        for bounce in [false, true] {
            let run = try migrateWithQEMU(scenario, type: "mdevsim-256mib", pausedSource: false, bounce: bounce,
                                          maxBandwidth: 64 << 30)
            #expect(run.status == "completed", "\(run.info)")
            #expect(run.sourceDigestAfter == run.destinationDigestAfter)
            let mbps = Double(256 << 20) / 1e6 / (Double(run.figure("total-time")) / 1000)
            print("QEMU figures, 256 MiB device state, \(bounce ? "bounce buffer" : "mapped data section"), max-bandwidth 64 GiB/s: total-time \(run.figure("total-time")) ms, downtime \(run.figure("downtime")) ms, setup \(run.figure("setup-time")) ms (\(String(format: "%.0f", mbps)) MB/s of device state over the total)")
            fflush(nil) // all streams: before the test runner's closing line, which CI reads last
        }
    }
}

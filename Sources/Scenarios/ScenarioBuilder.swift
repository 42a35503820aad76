import DeviceSimulator
import MigrationProtocol
import SystemPackage
import Yams

/// The scenario schema: which keys each mapping has, their defaults, and the checks across keys.
/// Collects every problem in `reader`; returns a scenario only when the parts it needs parsed.
struct ScenarioBuilder {
    let reader: NodeReader

    static let topKeys = ["name", "description", "seed", "parent", "types", "migration", "expect"]
    static let typeKeys = [
        "type", "instances", "memory", "page_size", "content_seed", "fill", "config_size", "data_section",
        "mmap", "chunk_size", "precopy", "dirty", "link_bandwidth", "clock", "reserved_state_bits", "faults",
        "pci", "dma", "protocols", "v2",
    ]
    static let v2Keys = ["p2p", "pre_copy"]
    static let dirtyKeys = ["rate", "pattern", "hot_fraction", "hot_share"]
    static let migrationKeys = ["source", "destination", "client"]
    static let clientKeys = ["max_precopy_iterations", "stop_threshold", "access", "paused", "cancel_in_precopy_after"]
    static let expectKeys = ["outcome", "errno", "step", "recovers_by_reset", "min_precopy_iterations", "converges", "cancelled", "min_source_time"]

    /// Defaults of a type's keys that the file may leave out.
    static let defaultInstances = 16
    static let defaultHotFraction = 0.1
    static let defaultHotShare = 0.9

    func scenario(_ root: Node) -> Scenario? {
        guard let top = reader.mapping(root, what: "a scenario", keys: Self.topKeys) else { return nil }
        let name = reader.required(top, "name", what: "the scenario").flatMap { reader.string($0) }
        let description = top["description"].map { reader.scalarText($0.value) ?? "" } ?? ""
        if let entry = top["description"], case .scalar = entry.value {} else if let entry = top["description"] {
            reader.expected(entry, "a string")
        }
        let seed = top["seed"].map { reader.integer($0, in: 0...UInt64.max, what: "an integer in 0...2^64-1") } ?? 1
        var parent = MdevParent.defaultName
        if let entry = top["parent"], let text = reader.string(entry) {
            if MdevParent.isValid(text) {
                parent = text
            } else {
                reader.expected(entry, "a parent device name of 1...\(MdevParent.maxNameLength) letters, digits, ':', '.', '-' and '_' (it names a directory), e.g. \(MdevParent.defaultName)")
            }
        }
        var types: [DeviceTypeSpec] = []
        var typeNodes: [String: Node] = [:]
        if let entry = reader.required(top, "types", what: "the scenario") {
            if case .sequence(let sequence) = entry.value, !sequence.isEmpty {
                for node in sequence {
                    guard let (spec, nameNode) = deviceType(node, seed: seed ?? 1) else { continue }
                    if let first = typeNodes[spec.name] {
                        reader.error(at: nameNode, "type: duplicate type name '\(spec.name)' (first at line \(first.mark?.line ?? 0))")
                        continue
                    }
                    typeNodes[spec.name] = nameNode
                    types.append(spec)
                }
            } else {
                reader.expected(entry, "a non-empty list of device types")
            }
        }
        let plan = migration(top["migration"], types: types, anchor: top.node)
        let expectation = expectation(top["expect"], plan: plan, anchor: top.node)
        guard let name, let seed, let plan, let expectation, !types.isEmpty else { return nil }
        return Scenario(name: name, description: description, seed: seed, types: types, migration: plan, expectation: expectation,
                        parent: parent)
    }

    // MARK: Device types

    /// One entry of `types:`, and the node of its name for duplicate diagnostics.
    func deviceType(_ node: Node, seed: UInt64) -> (DeviceTypeSpec, Node)? {
        guard let f = reader.mapping(node, what: "a device type", keys: Self.typeKeys) else { return nil }
        let errorsBefore = reader.valueErrorCount
        var c = DeviceConfiguration(dirtyRate: 0)
        var entries: [String: Entry] = [:]
        for (name, entry) in f.entries { entries[name] = entry }

        let nameEntry = reader.required(f, "type", what: "a device type")
        if let entry = nameEntry, let name = reader.string(entry) {
            // Its length is the engine's rule (DeviceConfiguration.problems); its characters are
            // this layer's, since the name becomes a directory of the mount.
            if !name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }) || name == "." || name == ".." {
                reader.expected(entry, "a type name of letters, digits, '-', '_' and '.' (it names a directory)")
            }
            c.typeName = name
        }
        let instances = f["instances"].map { reader.count($0, in: 1...4096) } ?? Self.defaultInstances
        if let e = f["memory"], let v = reader.size(e) { c.memorySize = v }
        if let e = f["page_size"], let v = reader.size(e, minimum: 1) { c.pageSize = v }
        var contentSeed: UInt64 = 1
        if let e = f["content_seed"], let v = reader.integer(e, in: 0...UInt64.max, what: "an integer in 0...2^64-1") { contentSeed = v }
        c.contentSeed = Scenario.combinedSeed(scenario: seed, content: contentSeed)
        if let e = f["fill"], let v = reader.choice(e, MemoryFill.allCases.map { ($0.rawValue, $0) }) { c.fill = v }
        if let e = f["config_size"], let v = reader.size(e) { c.configSize = v }
        if let e = f["data_section"], let v = reader.size(e, minimum: 1) { c.dataSectionSize = v }
        if let e = f["mmap"], let v = reader.bool(e) { c.dataSectionMmap = v }
        if let e = f["chunk_size"], let v = reader.size(e, minimum: 1) { c.chunkSize = v }
        if let e = f["precopy"], let v = reader.bool(e) { c.precopyData = v }
        if let e = f["link_bandwidth"], let v = reader.rate(e, minimum: 1) { c.linkBandwidth = v }
        if let e = f["clock"], let v = reader.choice(e, [("virtual", ClockMode.virtual), ("wall", .wall)]) { c.clock = v }
        if let e = f["reserved_state_bits"], let v = reader.integer(e, in: 0...UInt64(UInt32.max), what: "a 32-bit integer") {
            if UInt32(v) & DeviceState.mask != 0 {
                reader.expected(e, "bits 3-31 only (bits 0-2 are the state)")
            } else {
                c.reservedStateBits = UInt32(v)
            }
        }
        if let e = f["dirty"] { dirty(e, into: &c, entries: &entries) }
        if let e = f["protocols"] { protocols(e, into: &c) }
        if let e = f["v2"], let v2 = reader.mapping(e.value, what: "v2", keys: Self.v2Keys, labelPrefix: "v2.") {
            if let p = v2["p2p"], let on = reader.bool(p) { c.v2Features = on ? c.v2Features.union(.p2p) : c.v2Features.subtracting(.p2p) }
            if let p = v2["pre_copy"], let on = reader.bool(p) {
                c.v2Features = on ? c.v2Features.union(.preCopy) : c.v2Features.subtracting(.preCopy)
            }
            if !c.protocols.contains(.v2) { reader.error(at: e.key, "v2: this type does not speak v2 (add v2 to protocols)") }
        }
        let pci = f["pci"].map { self.pci($0) } ?? .default
        let dma = f["dma"].flatMap { self.dma($0, seed: c.contentSeed) }

        if reader.valueErrorCount == errorsBefore {
            // The engine's rules, each reported at its key (or at the type, for a default).
            for problem in c.problems(size: Units.formatSize, rate: Units.formatRate) {
                if let entry = entries[problem.key] ?? entries[problem.key.split(separator: ".").last.map(String.init) ?? ""] {
                    reader.error(at: entry.value, "\(problem.key): expected \(problem.message)")
                } else {
                    reader.error(at: f.node, "\(problem.key) (default): expected \(problem.message)")
                }
            }
        }
        var faultNames: [String: Node] = [:]
        if let e = f["faults"] {
            if case .sequence(let sequence) = e.value {
                for (index, node) in sequence.enumerated() {
                    guard let (fault, nameNode) = FaultSpec.parse(node, index: index, device: c, reader: reader) else { continue }
                    if let first = faultNames[fault.name] {
                        reader.error(at: nameNode ?? node, "name: duplicate fault name '\(fault.name)' (first at line \(first.mark?.line ?? 0))")
                        continue
                    }
                    faultNames[fault.name] = nameNode ?? node
                    c.faults.append(fault)
                }
            } else {
                reader.expected(e, "a list of faults")
            }
        }
        guard reader.valueErrorCount == errorsBefore, let instances, let nameEntry else { return nil }
        return (DeviceTypeSpec(configuration: c, instances: instances, pci: pci, dma: dma), nameEntry.value)
    }

    /// `dma:`: a guest-physical range the running device rewrites at a rate; all keys required.
    func dma(_ entry: Entry, seed: UInt64) -> DMASpec? {
        guard let f = reader.mapping(entry.value, what: "dma", keys: DMASpec.keys, labelPrefix: "dma.") else { return nil }
        let page = RegionLayout.hostPageSize
        let address = reader.required(f, "address", what: "dma").flatMap { reader.size($0) }
        let size = reader.required(f, "size", what: "dma").flatMap { reader.size($0, minimum: page) }
        let rate = reader.required(f, "rate", what: "dma").flatMap { reader.rate($0, minimum: 1) }
        guard let address, let size, let rate else { return nil }
        var valid = true
        if let e = f["address"], address % page != 0 {
            reader.expected(e, "a multiple of \(Units.formatSize(page))")
            valid = false
        }
        if let e = f["size"], size % page != 0 || size > DMASpec.maximumSize {
            reader.expected(e, "a multiple of \(Units.formatSize(page)) up to \(Units.formatSize(DMASpec.maximumSize))")
            valid = false
        }
        if let e = f["size"], address.addingReportingOverflow(size).overflow {
            reader.expected(e, "a range that ends below 2^64")
            valid = false
        }
        return valid ? DMASpec(address: address, size: size, rate: rate, seed: seed) : nil
    }

    /// `pci:`: the ids of the type's config space; every key optional (defaults in `PCIIdentity`).
    func pci(_ entry: Entry) -> PCIIdentity {
        guard let f = reader.mapping(entry.value, what: "pci", keys: PCIIdentity.keys, labelPrefix: "pci.") else { return .default }
        func id16(_ key: String) -> UInt16? {
            f[key].flatMap { reader.integer($0, in: 0...0xffff, what: "a 16-bit id (0...0xffff)") }.map { UInt16($0) }
        }
        let vendor = id16("vendor_id") ?? PCIIdentity.default.vendorID
        if let e = f["vendor_id"], vendor == 0xffff {
            // 0xffff is what a config read of an absent function returns: no device would show.
            reader.expected(e, "a vendor id other than 0xffff (it means 'no device')")
        }
        let device = id16("device_id") ?? PCIIdentity.default.deviceID
        let classCode = f["class_code"].flatMap { reader.integer($0, in: 0...0xffffff, what: "a 24-bit class code (0...0xffffff)") }
        let revision = f["revision"].flatMap { reader.integer($0, in: 0...0xff, what: "an 8-bit revision (0...0xff)") }
        return PCIIdentity(
            vendorID: vendor, deviceID: device, subsystemVendorID: id16("subsystem_vendor_id"), subsystemID: id16("subsystem_id"),
            classCode: classCode.map { UInt32($0) } ?? PCIIdentity.default.classCode,
            revision: revision.map { UInt8($0) } ?? PCIIdentity.default.revision)
    }

    /// `protocols: [v1, v2]`: a non-empty list of distinct protocol names.
    func protocols(_ e: Entry, into c: inout DeviceConfiguration) {
        guard case .sequence(let items) = e.value, !items.isEmpty else {
            reader.expected(e, "a non-empty list of v1, v2")
            return
        }
        var set: MigrationProtocols = []
        for item in items {
            guard let name = reader.scalarText(item), let p = MigrationProtocols.named.first(where: { $0.0 == name })?.1 else {
                reader.error(at: item, "protocols: expected v1 or v2, got \(NodeReader.show(item))")
                continue
            }
            if set.contains(p) { reader.error(at: item, "protocols: \(name) is listed twice") }
            set.insert(p)
        }
        if !set.isEmpty { c.protocols = set }
    }

    func dirty(_ entry: Entry, into c: inout DeviceConfiguration, entries: inout [String: Entry]) {
        guard let f = reader.mapping(entry.value, what: "dirty", keys: Self.dirtyKeys, labelPrefix: "dirty.") else { return }
        for (name, e) in f.entries { entries["dirty." + name] = e }
        if let e = f["rate"], let v = reader.rate(e) { c.dirtyRate = v }
        let patterns: [(String, String)] = [("uniform", "uniform"), ("hot-set", "hot-set"), ("sequential", "sequential")]
        let pattern = f["pattern"].map { reader.choice($0, patterns) } ?? "uniform"
        let fraction = f["hot_fraction"].map {
            reader.fraction($0, what: "a fraction in (0, 1]") { $0 > 0 && $0 <= 1 }
        } ?? Self.defaultHotFraction
        let share = f["hot_share"].map {
            reader.fraction($0, what: "a fraction in [0, 1]") { $0 >= 0 && $0 <= 1 }
        } ?? Self.defaultHotShare
        switch pattern {
        case "hot-set":
            if let fraction, let share { c.dirtyPattern = .hotSet(fraction: fraction, share: share) }
        case "sequential": c.dirtyPattern = .sequential
        default: c.dirtyPattern = .uniform
        }
        if pattern != "hot-set" {
            for key in ["hot_fraction", "hot_share"] {
                if let e = f[key] { reader.error(at: e.key, "dirty.\(key): only with pattern: hot-set") }
            }
        }
    }

    // MARK: Migration

    func migration(_ entry: Entry?, types: [DeviceTypeSpec], anchor: Node) -> MigrationPlan? {
        let f = entry.flatMap { reader.mapping($0.value, what: "migration", keys: Self.migrationKeys) }
        if entry != nil, f == nil { return nil }
        let names = types.map(\.name)
        func typeName(_ e: Entry) -> String? {
            guard let name = reader.string(e) else { return nil }
            if names.isEmpty || names.contains(name) { return name }
            var message = "\(e.label): unknown type '\(name)'"
            if let near = NodeReader.closest(to: name, among: names) { message += "; did you mean '\(near)'?" }
            else { message += "; the scenario's types are \(names.joined(separator: ", "))" }
            reader.error(at: e.value, message)
            return nil
        }
        let source = f?["source"].map(typeName) ?? names.first
        let destination = f?["destination"].map(typeName) ?? source
        guard let source, let destination else { return nil }
        let sourceType = types.first { $0.name == source }
        let destinationType = types.first { $0.name == destination }
        let bothMmap = (sourceType?.configuration.dataSectionMmap ?? true) && (destinationType?.configuration.dataSectionMmap ?? true)

        var plan = ClientPlan(access: bothMmap ? .mmap : .pread)
        if let clientEntry = f?["client"] {
            guard let c = reader.mapping(clientEntry.value, what: "client", keys: Self.clientKeys) else { return nil }
            if let e = c["max_precopy_iterations"], let v = reader.count(e, in: 0...1_000_000) { plan.maxPrecopyIterations = v }
            if let e = c["stop_threshold"], let v = reader.size(e) { plan.stopThreshold = v }
            if let e = c["access"], let v = reader.choice(e, DataAccessMode.allCases.map { ($0.rawValue, $0) }) {
                if v == .mmap, !bothMmap {
                    reader.error(at: e.value, "access: expected pread or pread8: the data section of the \(sourceType?.configuration.dataSectionMmap == false ? "source" : "destination") is not mmapable (mmap: false), got mmap")
                }
                plan.access = v
            }
            if let e = c["paused"], let v = reader.bool(e) { plan.guestPaused = v }
            if let e = c["cancel_in_precopy_after"], let v = reader.count(e, in: 1...1_000_000) {
                if plan.guestPaused {
                    reader.error(at: e.value, "cancel_in_precopy_after: a paused guest is saved without pre-copy; nothing to cancel")
                } else if v > plan.maxPrecopyIterations {
                    reader.expected(e, "at most max_precopy_iterations (\(plan.maxPrecopyIterations))")
                } else if sourceType?.configuration.precopyData == false {
                    reader.error(at: e.value, "cancel_in_precopy_after: the source has precopy: false, so pre-copy has no iterations to count")
                }
                plan.cancelInPrecopyAfter = v
            }
        }
        return MigrationPlan(source: source, destination: destination, client: plan)
    }

    // MARK: Expectation

    func expectation(_ entry: Entry?, plan: MigrationPlan?, anchor: Node) -> Expectation? {
        let cancelPlanned = plan?.client.cancelInPrecopyAfter != nil
        guard let entry else { return Expectation(cancelled: cancelPlanned) }
        guard let f = reader.mapping(entry.value, what: "expect", keys: Self.expectKeys) else { return nil }
        let errorsBefore = reader.valueErrorCount
        let kinds = [("success", "success"), ("failure", "failure"), ("error-state", "error-state")]
        let kind = f["outcome"].map { reader.choice($0, kinds) } ?? "success"
        var outcome = Expectation.Outcome.success
        switch kind {
        case "failure":
            let errno = f["errno"].flatMap { e -> Errno?? in
                guard let text = reader.scalarText(e.value), let value = ErrnoName.errno(named: text) else {
                    reader.expected(e, "an errno name (EIO, EINVAL, ...)")
                    return nil
                }
                return .some(value)
            }
            if let stepEntry = reader.required(f, "step", what: "expect with outcome: failure"), let step = step(stepEntry) {
                if f["errno"] == nil || errno != nil { outcome = .failure(errno: errno ?? nil, step: step) }
            }
        case "error-state":
            let recovers = f["recovers_by_reset"].map { reader.bool($0) } ?? true
            outcome = .errorState(recoversByReset: recovers ?? true)
        default: break
        }
        for (key, needed) in [("errno", "failure"), ("step", "failure"), ("recovers_by_reset", "error-state")] where kind != needed {
            if let e = f[key] { reader.error(at: e.key, "\(key): only with outcome: \(needed)") }
        }
        let minimum = f["min_precopy_iterations"].map { reader.count($0, in: 0...1_000_000) } ?? .some(nil)
        let converges = f["converges"].map { reader.bool($0) } ?? .some(nil)
        let minTime = f["min_source_time"].map { reader.duration($0, in: 0...(1 << 62)) } ?? .some(nil)
        var cancelled = cancelPlanned
        if let e = f["cancelled"], let v = reader.bool(e) {
            if v != cancelPlanned {
                reader.error(at: e.value, v
                    ? "cancelled: true needs migration.client.cancel_in_precopy_after"
                    : "cancelled: false contradicts migration.client.cancel_in_precopy_after")
            }
            cancelled = v
        }
        guard reader.valueErrorCount == errorsBefore, let minimum, let converges, let minTime, kind != nil else { return nil }
        return Expectation(outcome: outcome, minPrecopyIterations: minimum, converges: converges, cancelled: cancelled,
                           minSourceTimeNs: minTime)
    }

    /// `data_offset read in stop-and-copy`, `data write`, `pre-copy -> stop-and-copy`.
    func step(_ entry: Entry) -> FailureStep? {
        let grammar = "'<field> read|write [in <state>]', 'data read|write [in <state>]' or '<state> -> <state>'"
        guard let text = reader.scalarText(entry.value) else {
            reader.expected(entry, grammar)
            return nil
        }
        if text.contains("->") {
            let sides = text.split(separator: "->", omittingEmptySubsequences: false).map { $0.trimmingSpaces }
            if sides.count == 2, let from = StateName.bits(of: sides[0]), let to = StateName.bits(of: sides[1]) {
                return .transition(from: from, to: to)
            }
            reader.expected(entry, "'<state> -> <state>' with states stop, running, stop-and-copy, pre-copy, resuming, error")
            return nil
        }
        let words = text.split(separator: " ").map(String.init)
        guard words.count == 2 || (words.count == 4 && words[2] == "in"),
              let operation = AccessOperation(rawValue: words[1])
        else {
            reader.expected(entry, grammar)
            return nil
        }
        var state: UInt32?
        if words.count == 4 {
            guard let bits = StateName.bits(of: words[3]) else {
                reader.expected(entry, grammar + " with " + StateName.expectation)
                return nil
            }
            state = bits
        }
        if words[0] == "data" { return .data(operation: operation, state: state) }
        guard let field = HeaderField(rawValue: words[0]) else {
            reader.expected(entry, grammar + ", where <field> is one of " + HeaderField.allCases.map(\.rawValue).joined(separator: ", "))
            return nil
        }
        let step = FailureStep.access(field: field, operation: operation, state: state)
        guard step.isReportable else {
            if field == .deviceState, operation == .write {
                reader.error(at: entry.value, "step: a device_state write is reported as its transition: expected '<state> -> <state>' (e.g. 'running -> pre-copy'), got '\(text)'")
            } else {
                let steps = FailureStep.reportableAccesses.sorted { $0.key.rawValue < $1.key.rawValue }
                    .flatMap { field, ops in ops.map(\.rawValue).sorted().map { "\(field.rawValue) \($0)" } }
                reader.error(at: entry.value, "step: the client never does '\(field.rawValue) \(operation.rawValue)', so it can never fail there: expected one of \(steps.joined(separator: ", ")), data read|write, or '<state> -> <state>'")
            }
            return nil
        }
        return step
    }
}

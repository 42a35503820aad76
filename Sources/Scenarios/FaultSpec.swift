import DeviceSimulator
import MigrationProtocol
import Yams

/// The fault part of the scenario format: a fault is `when:` (a trigger) and `action:`, plus
/// `name`, `times` and `role`. This turns one such mapping into an engine `Fault`, refusing
/// triggers that can never fire on the device that carries them.
enum FaultSpec {
    static let keys = ["name", "when", "action", "times", "role"]
    static let triggerKeys = ["access", "op", "occurrence", "enter", "from", "to", "chunk", "phase", "bytes"]
    /// Actions written as a bare word.
    static let flagActions: [(String, FaultAction)] = [
        ("oversize_data_size", .oversizeDataSize),
        ("misaligned_data_offset", .misalignedDataOffset),
        ("overlapping_data_offset", .overlappingDataOffset),
    ]
    /// Actions written as a one-key mapping.
    static let valueActions = ["fail", "fail_to_error_state", "stall", "corrupt", "pending_never_zero", "pending_grows", "short_read"]
    static let allActions = valueActions + flagActions.map(\.0)

    static let phases: [(String, MigrationPhase)] = MigrationPhase.allCases.map { ($0.rawValue, $0) }
    static let roles: [(String, FaultRole)] = FaultRole.allCases.map { ($0.rawValue, $0) }
    static let fields: [(String, HeaderField)] = HeaderField.allCases.map { ($0.rawValue, $0) }
    static let operations: [(String, AccessOperation)] = AccessOperation.allCases.map { ($0.rawValue, $0) }

    /// Parses the `index`-th (from 0) fault of a device type configured as `device`.
    static func parse(_ node: Node, index: Int, device: DeviceConfiguration, reader: NodeReader) -> (fault: Fault, nameNode: Node?)? {
        guard let fields = reader.mapping(node, what: "a fault", keys: keys) else { return nil }
        let errorsBefore = reader.valueErrorCount
        let name = fields["name"].flatMap { reader.string($0) } ?? "fault-\(index + 1)"
        let role = fields["role"].flatMap { reader.choice($0, roles) } ?? .any
        var times: Int? = 1
        if let entry = fields["times"] {
            if reader.scalarText(entry.value) == "always" { times = nil }
            else if let n = reader.count(entry, in: 1...Int.max, what: "an integer of at least 1, or always") { times = n }
        }
        let trigger = reader.required(fields, "when", what: "a fault").flatMap {
            parseTrigger($0, device: device, role: role, reader: reader)
        }
        let action = reader.required(fields, "action", what: "a fault").flatMap {
            parseAction($0, device: device, reader: reader)
        }
        guard let trigger, let action, reader.valueErrorCount == errorsBefore else { return nil }
        if let whenEntry = fields["when"], let actionEntry = fields["action"] {
            checkCombination(trigger: trigger, action: action, when: whenEntry, actionEntry: actionEntry, reader: reader)
        }
        guard reader.valueErrorCount == errorsBefore else { return nil }
        return (Fault(name: name, trigger: trigger, action: action, times: times, role: role), fields["name"]?.value)
    }

    // MARK: Triggers

    static func parseTrigger(_ when: Entry, device: DeviceConfiguration, role: FaultRole, reader: NodeReader) -> FaultTrigger? {
        guard let f = reader.mapping(when.value, what: "a trigger", keys: triggerKeys, labelPrefix: "") else { return nil }
        let kinds = ["access", "enter", "from", "chunk", "bytes"].filter { f[$0] != nil }
        guard kinds.count == 1 || (kinds == ["from"] && f["to"] != nil) else {
            if kinds.isEmpty, f["to"] != nil {
                reader.error(at: f.node, "when: a transition trigger needs both 'from' and 'to'")
            } else {
                reader.error(at: f.node, "when: expected exactly one of access, enter, from/to, chunk, bytes; got \(kinds.isEmpty ? "none" : kinds.joined(separator: ", "))")
            }
            return nil
        }
        // Keys that belong to other kinds of trigger.
        let allowed: [String: Set<String>] = [
            "access": ["access", "op", "occurrence"], "enter": ["enter", "occurrence"], "from": ["from", "to"],
            "chunk": ["chunk", "phase"], "bytes": ["bytes", "phase"],
        ]
        let kind = kinds.first ?? "from"
        for name in triggerKeys where f[name] != nil && !(allowed[kind]?.contains(name) ?? false) {
            if let entry = f[name] { reader.error(at: entry.key, "\(name): not used by a '\(kind)' trigger") }
        }
        switch kind {
        case "access":
            guard let entry = f["access"], let field = reader.choice(entry, fields) else { return nil }
            let operation = f["op"].flatMap { reader.choice($0, operations) }
            let occurrence = f["occurrence"].map { reader.count($0, in: 1...Int.max) } ?? 1
            guard let occurrence else { return nil }
            if operation == .write, field.access == .readOnly, let op = f["op"] {
                reader.error(at: op.value, "op: \(field.rawValue) is read-only; a write trigger on it can never fire")
                return nil
            }
            return .access(field: field, operation: operation, occurrence: occurrence)
        case "enter":
            guard let entry = f["enter"], let bits = state(entry, reader: reader) else { return nil }
            let occurrence = f["occurrence"].map { reader.count($0, in: 1...Int.max) } ?? 1
            guard let occurrence else { return nil }
            let reachable = (0...7 as ClosedRange<UInt32>).contains { TransitionTable.decision(from: $0, to: bits) == .allowed }
            if !reachable {
                reader.error(at: entry.value, "enter: the transition table rejects every write of \(StateName.name(of: bits)) (\(bits)); this trigger can never fire")
                return nil
            }
            return .enterState(bits: bits, occurrence: occurrence)
        case "from":
            guard let fromEntry = f["from"], let toEntry = f["to"] else { return nil }
            let from = state(fromEntry, reader: reader), to = state(toEntry, reader: reader)
            guard let from, let to else { return nil }
            switch TransitionTable.decision(from: from, to: to) {
            case .allowed, .unchanged:
                return .transition(from: from, to: to)
            case .rejected, .unreachable:
                reader.error(at: fromEntry.key, "when: the transition table rejects \(StateName.name(of: from)) -> \(StateName.name(of: to)) (\(TransitionTable.reason(from: from, to: to))); this trigger can never fire")
                return nil
            }
        case "chunk":
            guard let entry = f["chunk"], let index = reader.count(entry, in: 1...Int.max) else { return nil }
            guard let phaseEntry = reader.required(f, "phase", what: "a chunk trigger"),
                  let phase = reader.choice(phaseEntry, phases) else { return nil }
            if phase == .resuming, role == .source {
                reader.error(at: phaseEntry.value, "phase: resuming chunks happen only on a destination; with role: source this trigger can never fire")
                return nil
            }
            if phase != .resuming, role == .destination {
                reader.error(at: phaseEntry.value, "phase: \(phase.rawValue) chunks happen only on a source; with role: destination this trigger can never fire")
                return nil
            }
            if phase == .preCopy, !device.precopyData {
                reader.error(at: phaseEntry.value, "phase: a device with precopy: false sends no pre-copy chunks; this trigger can never fire")
                return nil
            }
            if let budget = budget(phase, device), UInt64(index) > budget.chunks {
                reader.error(at: entry.value, "chunk: expected at most \(budget.chunks) (the \(phase.rawValue) chunks this device produces without dirtying: \(Units.formatSize(device.memorySize)) memory, \(Units.formatSize(device.pageSize)) pages, \(Units.formatSize(device.chunkSize)) chunks), got \(index)")
                return nil
            }
            return .chunk(phase: phase, index: index)
        default: // bytes
            guard let entry = f["bytes"], let count = reader.size(entry, minimum: 1) else { return nil }
            var phase: MigrationPhase?
            if let phaseEntry = f["phase"] {
                guard let p = reader.choice(phaseEntry, phases) else { return nil }
                phase = p
                if p == .preCopy, !device.precopyData {
                    reader.error(at: phaseEntry.value, "phase: a device with precopy: false sends no pre-copy bytes; this trigger can never fire")
                    return nil
                }
            }
            let limit: UInt64? = phase.map { budget($0, device)?.bytes } ?? {
                guard let pre = budget(.preCopy, device), let stop = budget(.stopAndCopy, device) else { return nil }
                return pre.bytes + stop.bytes
            }()
            if let limit, count > limit {
                reader.error(at: entry.value, "bytes: expected at most \(Units.formatSize(limit)) (the bytes this device moves \(phase.map { "in \($0.rawValue) " } ?? "")without dirtying), got \(Units.formatSize(count))")
                return nil
            }
            return .bytes(phase: phase, count: count)
        }
    }

    /// The most a non-dirtying device produces in a save phase; `nil` when unbounded or unknown.
    static func budget(_ phase: MigrationPhase, _ device: DeviceConfiguration) -> StreamBudget? {
        // Sizes that break the engine's rules make any count meaningless (and may underflow).
        guard (try? device.validate()) != nil else { return nil }
        switch phase {
        case .preCopy: return StreamBudget.preCopy(device)
        case .stopAndCopy: return StreamBudget.stopAndCopy(device)
        // The destination applies what another device sent, possibly split by the client.
        case .resuming: return nil
        }
    }

    static func state(_ entry: Entry, reader: NodeReader) -> UInt32? {
        if let text = reader.scalarText(entry.value), let bits = StateName.bits(of: text) { return bits }
        reader.expected(entry, StateName.expectation)
        return nil
    }

    // MARK: Actions

    static func parseAction(_ entry: Entry, device: DeviceConfiguration, reader: NodeReader) -> FaultAction? {
        if case .scalar = entry.value {
            if let text = reader.scalarText(entry.value), let flag = flagActions.first(where: { $0.0 == text }) { return flag.1 }
            if let text = reader.scalarText(entry.value), valueActions.contains(text) {
                reader.error(at: entry.value, "action: \(text) needs a value, e.g. {\(text): \(example(text))}")
                return nil
            }
            var message = "action: expected one of \(flagActions.map(\.0).joined(separator: ", ")), or a mapping with one of \(valueActions.joined(separator: ", ")), got \(NodeReader.show(entry.value))"
            if let text = reader.scalarText(entry.value), let near = NodeReader.closest(to: text, among: allActions) {
                message = "action: unknown action '\(text)'; did you mean '\(near)'?"
            }
            reader.error(at: entry.value, message)
            return nil
        }
        guard let f = reader.mapping(entry.value, what: "an action", keys: allActions) else { return nil }
        guard f.entries.count == 1, let (name, value) = f.entries.first else {
            if !f.entries.isEmpty || reader.diagnostics.isEmpty {
                reader.error(at: f.node, "action: expected exactly one action, got \(f.entries.count)")
            }
            return nil
        }
        switch name {
        case "fail", "fail_to_error_state":
            guard let text = reader.scalarText(value.value), let errno = ErrnoName.errno(named: text) else {
                reader.expected(value, "an errno name (\(ErrnoName.table.prefix(10).map(\.name).joined(separator: ", ")), ...)")
                return nil
            }
            return name == "fail" ? .fail(errno) : .failToErrorState(errno)
        case "stall":
            guard let ns = reader.duration(value, in: 1...60_000_000_000) else { return nil }
            return .stall(nanoseconds: ns)
        case "corrupt":
            guard let c = reader.mapping(value.value, what: "a corrupt action", keys: ["offset", "count"]) else { return nil }
            let offset = c["offset"].map { reader.size($0) } ?? 0
            let count = c["count"].map { reader.size($0, minimum: 1) } ?? 1
            guard let offset, let count else { return nil }
            if offset >= device.chunkSize || count > device.chunkSize - offset {
                let at = c["offset"] ?? c["count"] ?? value
                reader.error(at: at.value, "\(at.label): expected a range inside the chunk size (\(Units.formatSize(device.chunkSize))), got offset \(Units.formatSize(offset)) count \(Units.formatSize(count))")
                return nil
            }
            return .corruptChunk(offset: offset, count: count)
        case "pending_never_zero":
            guard let bytes = reader.size(value, minimum: 1) else { return nil }
            return .pendingNeverZero(remaining: bytes)
        case "pending_grows":
            guard let bytes = reader.size(value, minimum: 1) else { return nil }
            return .pendingGrows(bytes: bytes)
        case "short_read":
            guard let bytes = reader.size(value, minimum: 1) else { return nil }
            if bytes >= device.chunkSize {
                reader.expected(value, "below the chunk size (\(Units.formatSize(device.chunkSize))), or no read is ever short")
                return nil
            }
            return .shortRead(bytes: bytes)
        default:
            reader.error(at: value.key, "action: \(name) takes no value; write it as a bare word: action: \(name)")
            return nil
        }
    }

    static func example(_ action: String) -> String {
        switch action {
        case "fail", "fail_to_error_state": "EIO"
        case "stall": "5ms"
        case "corrupt": "{offset: 64B, count: 8B}"
        default: "4KiB"
        }
    }

    /// Pairs of trigger and action that can never take effect.
    static func checkCombination(trigger: FaultTrigger, action: FaultAction, when: Entry, actionEntry: Entry, reader: NodeReader) {
        if case .access(.reserved, _, _) = trigger {
            switch action {
            case .fail, .failToErrorState:
                reader.error(at: actionEntry.value, "action: the reserved field reads 0 and ignores writes, so a fail action on it can never take effect; trigger on another field")
            default: break
            }
        }
    }
}

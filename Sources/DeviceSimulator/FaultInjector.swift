import MigrationProtocol

/// Counts the events each fault's trigger looks at and says which faults fire.
struct FaultInjector: Sendable {
    /// Something that happened on the device, as fault triggers see it.
    enum Event {
        case access(HeaderField, AccessOperation)
        case stateWrite(from: UInt32, to: UInt32)
        /// A chunk staged (save) or applied (resume); `index` counts from 1 within the phase;
        /// `phaseBytes` and `totalBytes` include this chunk.
        case chunk(phase: MigrationPhase, index: Int, phaseBytes: UInt64, totalBytes: UInt64)
    }

    private(set) var faults: [Fault]
    private var seen: [Int]
    private var fired: [Int]
    /// Names of faults that fired, in order, for reports.
    private(set) var log: [String] = []

    init(faults: [Fault]) {
        self.faults = faults
        seen = Array(repeating: 0, count: faults.count)
        fired = Array(repeating: 0, count: faults.count)
    }

    /// The actions of every fault this event fires, in declaration order.
    mutating func fire(_ event: Event, role: FaultRole) -> [FaultAction] {
        var actions: [FaultAction] = []
        for (i, fault) in faults.enumerated() {
            guard fault.role == .any || fault.role == role else { continue }
            guard let occurrence = match(fault.trigger, event) else { continue }
            seen[i] += 1
            if let threshold = occurrence, seen[i] < threshold { continue }
            if let times = fault.times, fired[i] >= times { continue }
            fired[i] += 1
            log.append(fault.name)
            actions.append(fault.action)
        }
        return actions
    }

    /// `nil` if the event does not match; otherwise the occurrence from which it fires
    /// (`.some(nil)` for triggers that match one event only by their own condition).
    private func match(_ trigger: FaultTrigger, _ event: Event) -> Int?? {
        switch (trigger, event) {
        case let (.access(field, op, occurrence), .access(f, o)):
            guard field == f, op == nil || op == o else { return nil }
            return .some(occurrence)
        case let (.enterState(bits, occurrence), .stateWrite(from, to)):
            guard to == bits, from != bits else { return nil }
            return .some(occurrence)
        case let (.transition(from, to), .stateWrite(f, t)):
            guard from == f, to == t else { return nil }
            return .some(nil)
        case let (.chunk(phase, index), .chunk(p, i, _, _)):
            guard phase == p else { return nil }
            return i >= index ? .some(nil) : nil
        case let (.bytes(phase, count), .chunk(p, _, phaseBytes, totalBytes)):
            if let phase {
                guard phase == p, phaseBytes >= count else { return nil }
            } else if totalBytes < count {
                return nil
            }
            return .some(nil)
        default:
            return nil
        }
    }
}

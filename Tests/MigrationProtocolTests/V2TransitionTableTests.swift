import MigrationProtocol
import Testing

/// The v2 table against an oracle built from the uAPI's words alone: its single arcs, "optional
/// states behave as though the device was fully running if not supported", "select the shortest
/// path", "the path cannot have saving group states as interior arcs, only starting/end states",
/// and the blocked return from STOP_COPY to pre-copy. The oracle never reads the table's cells.
@Suite struct V2TransitionTableTests {
    typealias S = V2DeviceState

    /// The uAPI's single arcs for a device with every optional feature.
    static let uapiArcs: [(S, S)] = [
        (.runningP2P, .stop), (.stopCopy, .stop), (.resuming, .stop), (.runningP2P, .running),
        (.running, .runningP2P), (.stop, .runningP2P), (.stop, .stopCopy), (.stop, .resuming),
        (.running, .preCopy), (.runningP2P, .preCopyP2P), (.preCopy, .running),
        (.preCopyP2P, .runningP2P), (.preCopy, .preCopyP2P), (.preCopyP2P, .preCopy),
        (.preCopyP2P, .stopCopy),
    ]

    /// A state stands for itself, or for its fully running twin when P2P is not offered.
    static func representative(_ s: S, _ f: V2MigrationFeatures) -> S {
        guard !f.contains(.p2p) else { return s }
        switch s {
        case .runningP2P: return .running
        case .preCopyP2P: return .preCopy
        default: return s
        }
    }

    static func graph(_ f: V2MigrationFeatures) -> [S: Set<S>] {
        let offered: Set<S> = f.contains(.preCopy) ? [.stop, .running, .stopCopy, .resuming, .runningP2P, .preCopy, .preCopyP2P]
                                                   : [.stop, .running, .stopCopy, .resuming, .runningP2P]
        var edges: [S: Set<S>] = [:]
        for (a, b) in uapiArcs where offered.contains(a) && offered.contains(b) {
            let ra = representative(a, f), rb = representative(b, f)
            if ra != rb { edges[ra, default: []].insert(rb) }
        }
        return edges
    }

    /// All shortest admissible paths (states after `from`), by breadth-first enumeration.
    static func oraclePaths(from: S, to: S, _ f: V2MigrationFeatures) -> [[S]]? {
        let nodes = Set(graph(f).keys).union(graph(f).values.flatMap { $0 })
        // The same state again is no arc at all (the drivers' `while (cur != new)` loop), ERROR
        // included; a state the device does not offer is never held.
        if from == to { return from == .error || nodes.contains(from) ? [[]] : nil }
        guard from != .error, to != .error, nodes.contains(from), nodes.contains(to) else { return nil }
        let edges = graph(f)
        func admissible(_ path: [S]) -> Bool {
            let all = [from] + path
            let interior = all.dropFirst().dropLast()
            let wholeInGroup = all.allSatisfy(\.isSaving)
            if !wholeInGroup && interior.contains(where: \.isSaving) { return false }
            // A walk that leaves the saving group never re-enters it: one SET never ends a save
            // session and starts another.
            if from.isSaving, let left = all.firstIndex(where: { !$0.isSaving }),
               all[left...].contains(where: \.isSaving) { return false }
            return true
        }
        var frontier: [[S]] = [[]]
        for _ in 0..<nodes.count {
            var nextFrontier: [[S]] = []
            var found: [[S]] = []
            for path in frontier {
                let last = path.last ?? from
                for n in edges[last, default: []] where n != from && !path.contains(n) {
                    let candidate = path + [n]
                    if n == to { if admissible(candidate) { found.append(candidate) } } else { nextFrontier.append(candidate) }
                }
            }
            if !found.isEmpty { return found }
            frontier = nextFrontier
        }
        return []
    }

    static let featureSets = V2MigrationFeatures.allValid

    @Test(arguments: featureSets)
    func everyPairMatchesTheOracle(_ features: V2MigrationFeatures) {
        for from in S.allCases {
            for to in S.allCases {
                let table = V2TransitionTable.path(from: from, to: to, features: features)
                switch Self.oraclePaths(from: from, to: to, features) {
                case nil:
                    #expect(throws: V2TransitionTable.Refusal.self, "\(from) -> \(to) with \(features.rawValue)") { try table.get() }
                case let paths?:
                    #expect(paths.count <= 1, "oracle ambiguous for \(from) -> \(to): \(paths)")
                    if paths.isEmpty {
                        #expect(throws: V2TransitionTable.Refusal.self, "\(from) -> \(to) with \(features.rawValue)") { try table.get() }
                    } else {
                        #expect((try? table.get()) == paths[0], "\(from) -> \(to) with features \(features.rawValue)")
                    }
                }
            }
        }
    }

    /// Every arc a walk performs is one the uAPI defines (collapsed ones included).
    @Test(arguments: featureSets)
    func walksUseOnlyDefinedArcs(_ features: V2MigrationFeatures) throws {
        for from in S.allCases {
            for to in S.allCases {
                guard let path = try? V2TransitionTable.path(from: from, to: to, features: features).get() else { continue }
                var current = from
                for step in path {
                    #expect(V2TransitionTable.arc(from: current, to: step) != nil, "\(current) -> \(step) on \(from) -> \(to)")
                    #expect(step.exists(on: features))
                    current = step
                }
            }
        }
    }

    /// The walks QEMU 10.0 depends on (../shared/notes/qemu10-v2-findings.md).
    @Test func qemuSequences() throws {
        let all: V2MigrationFeatures = [.stopCopy, .p2p, .preCopy]
        // Paused source: one SET from PRE_COPY straight to STOP_COPY goes through PRE_COPY_P2P.
        #expect(try V2TransitionTable.path(from: .preCopy, to: .stopCopy, features: all).get() == [.preCopyP2P, .stopCopy])
        // Destination: RUNNING -> RESUMING crosses RUNNING_P2P and STOP.
        #expect(try V2TransitionTable.path(from: .running, to: .resuming, features: all).get() == [.runningP2P, .stop, .resuming])
        #expect(try V2TransitionTable.path(from: .resuming, to: .runningP2P, features: all).get() == [.stop, .runningP2P])
        // Without PRE_COPY: RUNNING_P2P -> STOP -> STOP_COPY.
        #expect(try V2TransitionTable.path(from: .runningP2P, to: .stopCopy, features: [.stopCopy, .p2p]).get() == [.stop, .stopCopy])
        // Without P2P the P2P states are skipped.
        #expect(try V2TransitionTable.path(from: .running, to: .stopCopy, features: [.stopCopy]).get() == [.stop, .stopCopy])
        #expect(try V2TransitionTable.path(from: .preCopy, to: .stopCopy, features: [.stopCopy, .preCopy]).get() == [.stopCopy])
    }

    @Test func refusals() {
        let all: V2MigrationFeatures = [.stopCopy, .p2p, .preCopy]
        #expect(V2TransitionTable.nextState(from: .error, to: .running, features: all) == .failure(.inError))
        #expect(V2TransitionTable.nextState(from: .running, to: .error, features: all) == .failure(.errorRequested))
        #expect(V2TransitionTable.nextState(from: .running, to: .runningP2P, features: [.stopCopy]) == .failure(.unsupported(.runningP2P)))
        #expect(V2TransitionTable.nextState(from: .running, to: .preCopy, features: [.stopCopy, .p2p]) == .failure(.unsupported(.preCopy)))
        #expect(V2TransitionTable.nextState(from: .stopCopy, to: .preCopy, features: all) == .failure(.blocked(from: .stopCopy, to: .preCopy)))
        #expect(V2TransitionTable.nextState(from: .stopCopy, to: .preCopyP2P, features: all) == .failure(.blocked(from: .stopCopy, to: .preCopyP2P)))
    }

    /// A SET returns a new data_fd exactly when its walk performs an arc that opens a session
    /// (into the saving group from outside, or into RESUMING), for every pair it allows.
    @Test(arguments: featureSets)
    func startsSessionMatchesTheWalk(_ features: V2MigrationFeatures) {
        let opening: Set<[S]> = [[.running, .preCopy], [.runningP2P, .preCopyP2P], [.stop, .stopCopy], [.stop, .resuming]]
        for from in S.allCases {
            for to in S.allCases {
                guard let path = try? V2TransitionTable.path(from: from, to: to, features: features).get() else { continue }
                let states = [from] + path
                let opens = zip(states, states.dropFirst()).contains { opening.contains([$0, $1]) }
                #expect(V2TransitionTable.startsSession(from: from, to: to) == opens, "\(from) -> \(to)")
            }
        }
    }

    @Test func namesRoundTrip() {
        for s in S.allCases { #expect(S(name: s.description) == s) }
        #expect(S(name: "stop-copy") == .stopCopy)
        #expect(S(name: "bogus") == nil)
    }
}

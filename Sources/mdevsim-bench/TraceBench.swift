import ArgumentParser
import Conformance
import DeviceSimulator
import Foundation
import Glibc
import MdevFS
import Scenarios

/// `mdevsim-bench trace`: what a trace costs per header access. Two measurements, each a set of
/// paired repeats with the order alternating, medians printed:
///
/// 1. the engine alone: `pending_bytes` reads of a running device (8 bytes at offset 8), without
///    an observer and with a `TraceRecorder` writing to a `TraceWriter` (a file in the workdir);
/// 2. through FUSE: two mounts in this process, one plain and one traced, an 8-byte pread at
///    offset 8 of a device of each (the header latency figure of `mdevsim-bench fuse`).
extension Bench {
    struct Trace: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "trace",
            abstract: "Header access latency with and without a trace (engine alone and through a FUSE mount).")

        @Option(help: "Paired repeats (medians are printed).")
        var repeats: Int = 7

        @Option(help: "Header accesses per FUSE measurement.")
        var accesses: Int = 20_000

        @Option(name: .customLong("engine-accesses"), help: "Header accesses per engine-alone measurement.")
        var engineAccesses: Int = 100_000

        func validate() throws {
            guard repeats >= 1, accesses >= 1, engineAccesses >= 1 else { throw ValidationError("counts must be at least 1") }
        }

        func run() throws {
            var template = Array("/tmp/mdevsim-tracebench.XXXXXX".utf8CString)
            guard mkdtemp(&template) != nil else { throw BenchError("mkdtemp failed: errno \(errno)") }
            let workdir = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            defer { try? FileManager.default.removeItem(atPath: workdir) }
            let scenario = fuseBenchScenario(memory: 64 << 20, chunk: 1 << 20, instances: 4)
            let header = TraceHeader(scenario: scenario, scenarioPath: nil, strict: false, recorder: "bench")

            // 1. Engine alone.
            let plain = MigrationRegion(configuration: scenario.types[0].configuration, identity: "plain", extents: benchExtents)
            let traced = MigrationRegion(configuration: scenario.types[0].configuration, identity: "traced", extents: benchExtents)
            let engineWriter = try TraceWriter(path: "\(workdir)/engine.trace.jsonl", header: header)
            traced.observer = TraceRecorder(sink: engineWriter)
            var engine: [String: [Double]] = [:]
            for r in 0..<repeats {
                for who in r % 2 == 0 ? ["plain", "traced"] : ["traced", "plain"] {
                    engine[who, default: []].append(Self.engineLatency(who == "plain" ? plain : traced, count: engineAccesses))
                }
            }
            engineWriter.close()
            print(Self.row("engine alone, pending_bytes read [ns/access]", engine))

            // 2. Through FUSE, both mounts served by this process.
            let plainMount = try Self.mount(scenario, at: "\(workdir)/plain", observer: nil)
            defer { plainMount.stop(); rmdir("\(workdir)/plain") }
            let fuseWriter = try TraceWriter(path: "\(workdir)/fuse.trace.jsonl", header: header)
            let tracedMount = try Self.mount(scenario, at: "\(workdir)/traced", observer: TraceRecorder(sink: fuseWriter))
            defer { tracedMount.stop(); fuseWriter.close(); rmdir("\(workdir)/traced") }
            let clients = try [plainMount, tracedMount].map { m -> RegionClient in
                let d = try MdevsimDevice.create(mount: m.mountpoint, type: Bench.FUSE.typeName)
                return try RegionClient(path: d.regionPath, sectionSize: 1 << 20, mapSection: false)
            }
            for c in clients { _ = try Self.fuseLatency(c, count: 2_000) }   // warm-up
            var fuse: [String: [Double]] = [:]
            for r in 0..<repeats {
                for who in r % 2 == 0 ? ["plain", "traced"] : ["traced", "plain"] {
                    fuse[who, default: []].append(try Self.fuseLatency(clients[who == "plain" ? 0 : 1], count: accesses) / 1000)
                }
            }
            print(Self.row("FUSE, 8-byte pread at offset 8 [us/access]", fuse))
            let size = (try? FileManager.default.attributesOfItem(atPath: "\(workdir)/fuse.trace.jsonl")[.size] as? NSNumber)?.intValue ?? 0
            print("  traced mount wrote \(fuseWriter.recordCount) records, \(size / max(1, Int(fuseWriter.recordCount))) bytes each")
        }

        static func mount(_ scenario: Scenario, at path: String, observer: (any AccessObserver)?) throws -> MdevMount {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let m = try MdevMount(scenario: scenario, mountpoint: path, observer: observer)
            do {
                try m.start()
            } catch {
                m.stop()
                throw error
            }
            return m
        }

        /// Mean nanoseconds per `pending_bytes` read, in process.
        static func engineLatency(_ region: MigrationRegion, count: Int) -> Double {
            var value: UInt64 = 0
            let start = DispatchTime.now().uptimeNanoseconds
            withUnsafeMutableBytes(of: &value) { buffer in
                for _ in 0..<count { _ = region.read(at: 8, into: buffer) }
            }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(count)
        }

        /// Mean nanoseconds per 8-byte pread at offset 8.
        static func fuseLatency(_ client: RegionClient, count: Int) throws -> Double {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<count { _ = try client.read8(Field.pendingBytes) }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / Double(count)
        }

        static func row(_ title: String, _ m: [String: [Double]]) -> String {
            let plain = Spread(m["plain"] ?? []), traced = Spread(m["traced"] ?? [])
            let ratios = Spread(zip(m["traced"] ?? [], m["plain"] ?? []).map { $1 > 0 ? $0 / $1 : 0 })
            return title + String(format: ": plain %.3f, traced %.3f (median of %d); traced/plain %.3fx (%.3f-%.3f)",
                                  plain.median, traced.median, plain.values.count, ratios.median, ratios.min, ratios.max)
        }
    }
}

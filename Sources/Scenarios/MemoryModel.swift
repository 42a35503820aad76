import DeviceSimulator
import SystemPackage
import Yams

/// What a scenario's devices cost a mount in memory at most, and whether a machine can serve
/// its migration (`mdevsim check` applies it; scenarios/README.md, "Memory").
///
/// A device of a type costs, from its creation: its data section and as much again for the
/// partial record a resume carries from one transaction to the next, four copies of its config
/// blob (power-on, live, a save's snapshot, a resume's buffer) and a little fixed bookkeeping. It
/// costs more only as it is touched: each page written (by the running device, or by a resume)
/// takes a page-sized slot of a 2 MiB extent and 4 bytes of slot table, and its sparse bitmaps
/// (references, pages owed to a save) hold 4 KiB per 2^15 pages touched. A migration in one mount (`mdevsim run`, a VMM on the mount)
/// holds the source and the destination. The source stores every page it rewrote (all of them,
/// at worst, when it dirties); the destination stores the pages that arrive other than the
/// source's power-on contents, which are those the source rewrote, and keeps the others as
/// references (`DeviceMemory`), which cost one bitmap over its pages.
public enum MemoryModel {
    /// Bookkeeping of a device besides its memory: the engine, its tables, a reply buffer.
    public static let fixedBookkeeping: UInt64 = 4 << 20
    /// What the daemon needs besides its devices (runtime, FUSE buffers of 10 threads).
    public static let daemonBaseline: UInt64 = 256 << 20

    /// A device of `c` from its creation on, before anything touches it.
    public static func createdBytes(_ c: DeviceConfiguration) -> UInt64 {
        2 * c.dataSectionSize + 4 * c.configSize + fixedBookkeeping
    }

    /// A device of `c` with all of its memory touched: its pages in slots of 2 MiB extents, their
    /// slot tables (4 bytes a page, in tables of 512 pages) and two bitmaps.
    public static func touchedBytes(_ c: DeviceConfiguration) -> UInt64 {
        let extent: UInt64 = 2 << 20
        let stored = (c.memorySize + extent - 1) / extent * extent
        let tables = (c.pageCount + 511) / 512 * (2048 + 64)
        return stored + tables + 2 * bitmapBytes(c)
    }

    /// A full sparse bitmap over the pages of `c` (4 KiB leaves of 2^15 bits and their index).
    public static func bitmapBytes(_ c: DeviceConfiguration) -> UInt64 {
        ((c.pageCount + (1 << 15) - 1) >> 15) * (4096 + 64 + 8)
    }

    /// The most a migration of `scenario` costs the mount serving it.
    public static func migrationBytes(_ scenario: Scenario) -> UInt64? {
        guard let source = scenario.sourceType?.configuration, let destination = scenario.destinationType?.configuration else { return nil }
        var total = daemonBaseline + createdBytes(source) + createdBytes(destination)
        // Without dirtying every page arrives as the source's power-on page: references only.
        total += source.dirtyRate > 0 ? touchedBytes(source) + touchedBytes(destination) + bitmapBytes(destination) : bitmapBytes(destination)
        return total
    }

    /// Why the machine, with `budget` bytes for the daemon, cannot serve the scenario's
    /// migration (nil when it can). `what` names the budget ("this machine's 23.4GiB").
    public static func refusal(_ scenario: Scenario, budget: UInt64, what: String) -> String? {
        guard let need = migrationBytes(scenario), need > budget, let source = scenario.sourceType?.configuration else { return nil }
        let stored = source.dirtyRate > 0
            ? "the source and the destination each store every page the source rewrites, all of them at worst"
            : "the devices' page bitmaps"
        return "memory: the migration of this scenario needs up to \(approximate(need)) (\(stored); see the memory model in scenarios/README.md), more than \(what) (\(approximate(budget))): this machine cannot serve it"
    }

    /// `23.5GiB`: one decimal in the largest binary unit that keeps the number at least 1.
    static func approximate(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes), unit = 0
        while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes)B" : "\((value * 10).rounded() / 10)\(units[unit])"
    }

    /// `refusal` as a diagnostic of `file`, at the source type's `memory` key (or its entry).
    public static func check(_ scenario: Scenario, text: String, file: String, budget: UInt64, what: String) -> Diagnostic? {
        guard let message = refusal(scenario, budget: budget, what: what) else { return nil }
        var line = 1, column = 1
        if let root = try? Yams.compose(yaml: text), case .mapping(let top)? = Optional(root),
           case .sequence(let types)? = top["types"] {
            for type in types {
                guard case .mapping(let m) = type, m["type"]?.string == scenario.migration.source else { continue }
                if let mark = (m["memory"] ?? type).mark { line = mark.line; column = mark.column }
            }
        }
        return Diagnostic(file: file, line: line, column: column, message: message)
    }
}

import Foundation
import Glibc

/// The memory this process can use: the machine's (`MemTotal`), or less under an address-space
/// or data limit (`ulimit -v`, `ulimit -d`). What `check` holds a scenario's memory model against.
enum MachineMemory {
    static func budget() -> (bytes: UInt64, what: String)? {
        var best: (bytes: UInt64, what: String)?
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
           let kib = UInt64(line.split(separator: " ").dropFirst().first ?? "") {
            best = (kib << 10, "this machine's memory (MemTotal)")
        }
        for (resource, what) in [(RLIMIT_AS, "the address-space limit (ulimit -v)"), (RLIMIT_DATA, "the data limit (ulimit -d)")] {
            var limit = rlimit()
            // RLIM_INFINITY is all ones (its C macro does not import).
            guard getrlimit(__rlimit_resource_t(resource.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { continue }
            if best == nil || UInt64(limit.rlim_cur) < best?.bytes ?? 0 { best = (UInt64(limit.rlim_cur), what) }
        }
        return best
    }
}

import Foundation

/// mdev UUIDs as sysfs takes them: 8-4-4-4-12 hex digits, any case, an optional trailing
/// newline (`echo $uuid > create`); stored in lowercase.
enum MdevUUID {
    static func parse(_ bytes: UnsafeRawBufferPointer) -> String? {
        guard bytes.count <= 64 else { return nil }
        var text = String(decoding: bytes, as: UTF8.self)
        if text.hasSuffix("\n") { text.removeLast() }
        guard text.utf8.count == 36, let uuid = UUID(uuidString: text) else { return nil }
        return uuid.uuidString.lowercased()
    }
}

import Glibc
import SystemPackage

/// A fresh, empty directory `/tmp/<prefix>.XXXXXX` made with `mkdtemp`; the caller removes it.
public func makeTemporaryDirectory(_ prefix: String) throws(Errno) -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    guard mkdtemp(&template) != nil else { throw Errno(rawValue: errno) }
    return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

import ArgumentParser
import Foundation
import Logging

/// `--log-level` of every command, and MDEVSIM_LOG_LEVEL when the option is not given: what the
/// command (and the mounts it serves) logs to stderr, each line in the one format of
/// `FileLogHandler`.
struct LoggingOptions: ParsableArguments {
    @Option(name: .customLong("log-level"), help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error or critical (default: $MDEVSIM_LOG_LEVEL, else the command's own; mount: info, the others: warning).", valueName: "level"))
    var logLevel: Logger.Level?

    /// The option, else the environment, else `fallback`. An unknown MDEVSIM_LOG_LEVEL is ignored
    /// (with a warning) rather than refused: the environment is not the command line.
    func level(default fallback: Logger.Level) -> Logger.Level {
        if let logLevel { return logLevel }
        if let text = ProcessInfo.processInfo.environment["MDEVSIM_LOG_LEVEL"], !text.isEmpty {
            if let level = Logger.Level(rawValue: text.lowercased()) { return level }
            FileHandle.standardError.write(Data("mdevsim: warning: MDEVSIM_LOG_LEVEL=\(text) is not a log level; using \(fallback.rawValue)\n".utf8))
        }
        return fallback
    }

    /// Sends every Logger of this process to stderr in the one line format, at `level(default:)`.
    func bootstrap(default fallback: Logger.Level = .warning) {
        let level = level(default: fallback)
        LoggingSystem.bootstrap { label in
            var handler = FileLogHandler(label: label, handle: .standardError)
            handler.logLevel = level
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// The one log line format of mdevsim: `2026-12-01T10:22:20Z warning mdevsim.run: message`
/// (ISO 8601 UTC time, level, logger label, message), to a file or stderr.
struct FileLogHandler: LogHandler, @unchecked Sendable {
    let label: String
    let handle: FileHandle
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let stamp = ISO8601DateFormatter().string(from: Date())
        handle.write(Data("\(stamp) \(event.level) \(label): \(event.message)\n".utf8))
    }
}

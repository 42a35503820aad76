import SystemPackage

/// A reference client's (v1 or v2) migration step failed: where, and the errno if an access or
/// call failed. It becomes the report's `MigrationReport.Failure`.
struct StepFailure: Error {
    var step: String
    var errno: Errno?
    var message: String
}

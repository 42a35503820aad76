import MdevFS

/// One memory pool for every in-process device of the bench, as a mount has one for all its
/// devices: a destination then reuses extents an earlier device touched, as it does in a mount
/// that has run a migration before.
let benchExtents = ExtentPool.standard()

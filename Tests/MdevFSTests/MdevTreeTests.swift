import Foundation
@testable import MdevFS
import Testing
import TestSupport

/// The tree's device lifetime: a remove returns once the device is gone, not merely unlisted.
@Suite struct MdevTreeTests {
    /// A request in flight (here a thread standing in for the RELEASE handler, which clears the
    /// holder before it lets go of the device) still holds the removed device: the remove waits
    /// for it, so that the memory is back before the client hears of the remove (CI once created
    /// a device right after a remove and found no memory).
    @Test func aRemoveReturnsOnceTheDeviceIsFreed() throws {
        let tree = MdevTree(types: smallScenario().types)
        let uuid = "0b1c9d2e-0000-4000-8000-000000000001"
        #expect(tree.create(type: 0, uuid: uuid, strict: false, observer: nil) { _ in } == nil)
        weak var freed: MdevDevice?
        let held = Holder(try #require(tree.device(uuid)))
        freed = held.device
        let started = DispatchSemaphore(value: 0)
        let thread = Thread {
            started.signal()
            usleep(200_000)
            held.device = nil
        }
        thread.start()
        started.wait()
        #expect(tree.remove(uuid) { _ in } == nil)
        #expect(freed == nil, "the remove returned while the device was still alive")
        #expect(tree.device(uuid) == nil)
    }

    final class Holder: @unchecked Sendable {
        var device: MdevDevice?
        init(_ device: MdevDevice) { self.device = device }
    }
}

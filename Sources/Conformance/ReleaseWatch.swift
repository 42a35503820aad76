import DeviceSimulator
import Foundation
import Synchronization
import SystemPackage

/// Forwards every access and event to another observer (a trace), and lets a thread wait for a
/// device's RELEASE.
///
/// FUSE delivers RELEASE after the client's `close` has returned. A `remove` written before it
/// arrives is refused (`EBUSY`, and retried), and each refusal is an event the trace records: the
/// number of them depended on thread timing, so traces of the same scenario differed. Waiting for
/// the release first makes the remove succeed the first time.
final class ReleaseWatch: AccessObserver {
    private let next: any AccessObserver
    private let released = Mutex<Set<String>>([])

    init(forwardingTo next: any AccessObserver) {
        self.next = next
    }

    func regionAccessed(_ access: RegionAccess) {
        next.regionAccessed(access)
    }

    func v2Called(_ call: V2Call) {
        next.v2Called(call)
    }

    func deviceEvent(_ event: DeviceEvent, device: String, type: String?, errno: Errno?) {
        next.deviceEvent(event, device: device, type: type, errno: errno)
        if event == .release, errno == nil { _ = released.withLock { $0.insert(device) } }
    }

    /// Waits (up to `timeout` seconds) until `device`'s region has been released; false on timeout,
    /// after which the caller's remove retries as it always did.
    func waitForRelease(of device: String, timeout: Double = 5) -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while ContinuousClock.now < deadline {
            if released.withLock({ $0.remove(device) != nil }) { return true }
            usleep(1000)
        }
        return false
    }
}

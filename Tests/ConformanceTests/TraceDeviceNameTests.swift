import Conformance
import Foundation
import Scenarios
import Testing

/// A trace recorded by a mount names devices by their UUIDs (`MdevUUID`, issue 13): any other
/// name there is refused at its line; in-process recorders keep free names.
@Suite struct TraceDeviceNameTests {
    func trace(recorder: String, device: String) throws -> String {
        let scenario = try ScenarioLoader.parse(traceScenarioText())
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let header = String(decoding: try encoder.encode(TraceHeader(scenario: scenario, scenarioPath: nil, strict: false, recorder: recorder)), as: UTF8.self)
        return header + "\n" + #"{"time_ns":1,"device":"\#(device)","op":"create","type":"trace-dev","result":"ok"}"#
    }

    @Test(arguments: ["mount", "run"])
    func aMountTraceNeedsUUIDs(recorder: String) throws {
        for bad in ["a", " aaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE", "../x"] {
            #expect {
                try TraceFile.parse(Data(try trace(recorder: recorder, device: bad).utf8), path: "m.jsonl")
            } throws: { error in
                "\(error)".hasPrefix("m.jsonl:2: ") && "\(error)".contains("is not an mdev UUID")
            }
        }
        let ok = try TraceFile.parse(Data(try trace(recorder: recorder, device: "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee").utf8))
        #expect(ok.entries.count == 1)
    }

    @Test func anInProcessTraceKeepsFreeNames() throws {
        #expect(try TraceFile.parse(Data(try trace(recorder: "in-process", device: "t/source").utf8)).entries.count == 1)
    }
}

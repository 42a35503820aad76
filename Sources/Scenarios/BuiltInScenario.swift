import DeviceSimulator

extension Scenario {
    /// The text of `scenarios/default.yaml`, embedded so that the command needs no file at run
    /// time. A test proves the two are identical.
    public static let builtInDefaultText = #"""
# The built-in default: what mdevsim offers when no scenario is given.
# Exercises: one modest device type, room for 16 instances, a live migration that converges.
name: default
description: One mdevsim-default type, 64MiB of memory with modest uniform dirtying over a 1GiB/s link.
seed: 1
types:
  - type: mdevsim-default
    instances: 16
    memory: 64MiB
    page_size: 4KiB
    content_seed: 1
    fill: random
    config_size: 4KiB
    data_section: 1MiB
    mmap: true
    chunk_size: 1MiB
    precopy: true
    dirty:
      rate: 8MiB/s
      pattern: uniform
    link_bandwidth: 1GiB/s
    clock: virtual
migration:
  source: mdevsim-default
  client:
    max_precopy_iterations: 16
    stop_threshold: 1MiB
    access: mmap
expect:
  outcome: success
  converges: true

"""#

    /// The built-in default scenario: `builtInDefaultText`, parsed. Should the text ever stop
    /// parsing (the tests forbid it), the same values built in code are used instead.
    public static let builtInDefault: Scenario = {
        (try? ScenarioLoader.parse(builtInDefaultText, file: "<built-in default>")) ?? builtInDefaultInCode
    }()

    /// The default scenario written as Swift values; equal to the parsed text (tested).
    static var builtInDefaultInCode: Scenario {
        let configuration = DeviceConfiguration(
            typeName: "mdevsim-default", memorySize: 64 << 20, pageSize: 4096,
            contentSeed: combinedSeed(scenario: 1, content: 1), fill: .random, configSize: 4096,
            dataSectionSize: 1 << 20, dataSectionMmap: true, chunkSize: 1 << 20, precopyData: true,
            dirtyRate: 8 << 20, dirtyPattern: .uniform, linkBandwidth: 1 << 30, clock: .virtual
        )
        return Scenario(
            name: "default",
            description: "One mdevsim-default type, 64MiB of memory with modest uniform dirtying over a 1GiB/s link.",
            seed: 1,
            types: [DeviceTypeSpec(configuration: configuration, instances: 16)],
            migration: MigrationPlan(source: "mdevsim-default", client: ClientPlan(maxPrecopyIterations: 16, stopThreshold: 1 << 20, access: .mmap)),
            expectation: Expectation(outcome: .success, converges: true)
        )
    }
}

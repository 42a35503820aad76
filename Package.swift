// swift-tools-version: 6.1
// mdevsim: a simulated vendor driver for VFIO migration v1 (mdev), exposed over FUSE.
//
// Layers, each its own target (a lower layer never imports a higher one):
//   MigrationProtocol  the v1 region header, device_state and its transition table: pure values
//   DeviceSimulator    the simulated device and the vendor-driver engine of the region: no I/O
//   Scenarios          YAML scenario files -> validated device configurations
//   CFuse3 / FUSEKit   libfuse3 low-level API, and a typed Swift layer over it
//   MdevFS             the mount tree: files and offsets -> engine calls
//   Conformance        the reference VMM client, reports, runner
//   SVGCharts          small accessible SVG charts (timeline, line, bars) as Plot nodes: knows no mdevsim type
//   Report             the self-contained HTML page of a run or a trace: chart data from records, Plot HTML
//   mdevsim            the command (swift-argument-parser): wiring and printing only
//   CMdevsimVFIO       libmdevsim-vfio.so, C: an LD_PRELOAD VFIO shim that connects a real VMM to a mount
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
]

let package = Package(
    name: "mdevsim",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mdevsim", targets: ["mdevsim"]),
        .library(name: "DeviceSimulator", targets: ["DeviceSimulator"]),
        .library(name: "MigrationProtocol", targets: ["MigrationProtocol"]),
        // The LD_PRELOAD library that lets an unmodified VMM (QEMU 7.2) use the mount's devices
        // as VFIO devices: .build/<config>/libmdevsim-vfio.so. Plain C, no Swift runtime.
        .library(name: "mdevsim-vfio", type: .dynamic, targets: ["CMdevsimVFIO"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.11.0"), // LogHandler.log(event:)
        .package(url: "https://github.com/apple/swift-system.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.0.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.0"),
        .package(url: "https://github.com/JohnSundell/Plot.git", from: "0.14.0"),
        .package(url: "https://github.com/CoreOffice/XMLCoder.git", from: "0.18.2"), // JUnit reports
    ],
    targets: [
        .target(
            name: "MigrationProtocol",
            // Errno only (MdevUUID's refusal): a value type, no I/O.
            dependencies: [.product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: swiftSettings
        ),
        // posix_memalign/free for the engine's fallible allocations: the engine imports no Glibc.
        .target(name: "CFallibleMemory", path: "Sources/CFallibleMemory"),
        .target(
            name: "DeviceSimulator",
            dependencies: [
                "CFallibleMemory",
                "MigrationProtocol",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Scenarios",
            dependencies: [
                "DeviceSimulator",
                .product(name: "Yams", package: "Yams"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings,
            // scenarios/*.yaml embedded as Scenario.bundledLibrary: the command runs them from any directory.
            plugins: ["EmbedScenarios"]
        ),
        .executableTarget(name: "mdevsim-embed-scenarios", path: "Sources/mdevsim-embed-scenarios"),
        .plugin(name: "EmbedScenarios", capability: .buildTool(), dependencies: ["mdevsim-embed-scenarios"]),
        // Only the C compiler's view of <linux/vfio.h>, so tests can prove the Swift layout equals it.
        .target(name: "CVFIOHeader", path: "Sources/CVFIOHeader"),
        // libmdevsim-vfio.so: emulates /dev/vfio/* for the mount's devices inside a VMM process.
        .target(
            name: "CMdevsimVFIO",
            path: "Sources/CMdevsimVFIO",
            cSettings: [.unsafeFlags(["-Wall", "-Wextra", "-Wshadow"])],
            // SwiftPM links every product with the Swift driver: -nostartfiles drops swiftrt.o
            // (which would pull in libswiftCore), and -static-stdlib turns the driver's
            // -lswiftCore into an archive nothing references, so the library needs no Swift
            // runtime (ldd: libc, plus libstdc++/libm from the driver's list, unused).
            linkerSettings: [
                .linkedLibrary("dl"), .linkedLibrary("pthread"), .unsafeFlags(["-nostartfiles", "-static-stdlib"]),
            ]
        ),
        .systemLibrary(
            name: "CFuse3",
            path: "Sources/CFuse3",
            pkgConfig: "fuse3",
            providers: [.apt(["libfuse3-dev", "fuse3", "pkg-config"])]
        ),
        .target(
            name: "FUSEKit",
            dependencies: [
                "CFuse3",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "MdevFS",
            dependencies: [
                "FUSEKit", "DeviceSimulator", "MigrationProtocol", "Scenarios",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Conformance",
            dependencies: [
                "DeviceSimulator", "MigrationProtocol", "Scenarios", "MdevFS", "FUSEKit",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "XMLCoder", package: "XMLCoder"),
            ],
            swiftSettings: swiftSettings
        ),
        // The SVG drawing of the HTML report: generic charts, no mdevsim types, no I/O.
        .target(
            name: "SVGCharts",
            dependencies: [.product(name: "Plot", package: "Plot")],
            swiftSettings: swiftSettings
        ),
        // `run --html`, `migrate --html`, `mdevsim report`: chart data from trace records and run
        // results (pure), and the page (Plot HTML with inline CSS and SVG).
        .target(
            name: "Report",
            dependencies: [
                "Conformance", "SVGCharts", "DeviceSimulator", "MigrationProtocol", "Scenarios",
                .product(name: "Plot", package: "Plot"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "mdevsim",
            dependencies: [
                "Conformance", "Report", "DeviceSimulator", "MigrationProtocol", "Scenarios", "MdevFS", "FUSEKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
        // A VMM-shaped exerciser of libmdevsim-vfio.so for the tests (dup, reuse, threads, dispatch).
        .executableTarget(
            name: "mdevsim-vfio-probe",
            path: "Sources/mdevsim-vfio-probe",
            cSettings: [.unsafeFlags(["-Wall", "-Wextra"])]
        ),
        .executableTarget(
            name: "mdevsim-bench",
            dependencies: [
                "Conformance", "DeviceSimulator", "MdevFS", "Scenarios", "FUSEKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // Engine fixtures (a small configuration, field and state helpers): they need only the
        // engine, so the engine's tests depend on nothing above it.
        .target(
            name: "EngineFixtures",
            dependencies: ["DeviceSimulator", "MigrationProtocol", .product(name: "SystemPackage", package: "swift-system")],
            path: "Tests/EngineFixtures",
            swiftSettings: swiftSettings
        ),
        // The helpers every test target that mounts or runs built products shares: polling,
        // temporary directories, the built-products lookup, the mount fixture. Engine tests
        // (DeviceSimulatorTests, MigrationProtocolTests) do not use it.
        .target(
            name: "TestSupport",
            dependencies: ["MdevFS", "Scenarios", "DeviceSimulator", "FUSEKit", .product(name: "SystemPackage", package: "swift-system")],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MigrationProtocolTests",
            dependencies: ["MigrationProtocol", "CVFIOHeader", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DeviceSimulatorTests",
            dependencies: [
                "DeviceSimulator", "MigrationProtocol", "EngineFixtures",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ScenariosTests",
            dependencies: ["Scenarios", "DeviceSimulator", "Conformance"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FUSEKitTests",
            dependencies: ["FUSEKit", "TestSupport", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "MdevFSTests",
            dependencies: ["MdevFS", "FUSEKit", "DeviceSimulator", "Conformance", "TestSupport", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: swiftSettings
        ),
        // Needs qemu-system-x86_64 (7.2) and libmdevsim-vfio.so built next to the test bundle.
        .testTarget(
            name: "QEMUTests",
            dependencies: ["MdevFS", "Scenarios", "Conformance", "TestSupport", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SVGChartsTests",
            dependencies: ["SVGCharts"],
            swiftSettings: swiftSettings
        ),
        // Chart data from known traces, the page's structure, and the browser test (chromium).
        .testTarget(
            name: "ReportTests",
            dependencies: ["Report", "Conformance", "SVGCharts", "Scenarios", "DeviceSimulator", "MigrationProtocol", "FUSEKit"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ConformanceTests",
            dependencies: [
                "Conformance", "DeviceSimulator", "Scenarios", "MdevFS", "FUSEKit", "TestSupport", "EngineFixtures",
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)

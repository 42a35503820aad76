import ArgumentParser

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run one migration between two simulated devices.")
    func run() async throws {}
}

import ArgumentParser

extension FlareAgent {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "placeholder")
        func run() async throws {}
    }
}

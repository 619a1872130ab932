import ArgumentParser
import FlareClient
import Foundation

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Option(help: "The BurstFlare server (env FLARE_URL; default: the last one you signed in to, else http://127.0.0.1:8787).")
    var url: String?

    /// The server URL by precedence: --url, FLARE_URL, the saved config, the default.
    var resolvedURL: String {
        let raw = url ?? ProcessInfo.processInfo.environment["FLARE_URL"] ?? CLIConfig.load().url
            ?? "http://127.0.0.1:8787"
        return raw.hasSuffix("/") ? String(raw.dropLast()) : raw
    }

    /// Where WebSocket connections go: FLARE_GATEWAY_URL (a standalone flare-gateway), else the server.
    var resolvedGatewayURL: String {
        guard let raw = ProcessInfo.processInfo.environment["FLARE_GATEWAY_URL"], !raw.isEmpty else {
            return resolvedURL
        }
        return raw.hasSuffix("/") ? String(raw.dropLast()) : raw
    }

    /// A client with the saved access token; fails with advice when signed out.
    func authenticatedClient() throws -> FlareClient {
        let config = CLIConfig.load()
        guard let token = config.accessToken else {
            throw CLIError("you are not signed in; run `flare auth login --email YOU@EXAMPLE.COM --password-stdin`")
        }
        return FlareClient(baseURL: resolvedURL, token: token)
    }
}

/// `--json` for commands whose output scripts read.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of a table.")
    var json = false
}

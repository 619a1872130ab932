import ArgumentParser
import FlareClient
import FlareContracts
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

    /// A client without a token (sign-up, sign-in, refresh).
    var anonymousClient: FlareClient {
        FlareClient(baseURL: resolvedURL, token: nil, userAgent: Self.userAgent)
    }

    /// `flare/0.1.0 (host; Linux)`: how `flare auth sessions` names this machine.
    static let userAgent: String = {
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count) == 0 ? String(cString: name) : "unknown host"
        return "flare/\(Flare.configuration.version) (\(host); Linux)"
    }()

    /// A client with the saved access token, refreshed first when it expires within a minute;
    /// fails with advice when signed out or when the sign-in has ended.
    func authenticatedClient() async throws -> FlareClient {
        let signIn = "run `flare auth login --email YOU@EXAMPLE.COM --password-stdin`"
        var config = CLIConfig.load()
        guard config.accessToken != nil else { throw CLIError("you are not signed in; \(signIn)") }
        if config.needsRefresh {
            config = try await CLIConfig.locked {
                // Another flare may have refreshed while this one waited for the lock.
                var config = CLIConfig.load()
                guard config.needsRefresh, let refreshToken = config.refreshToken else { return config }
                do {
                    let response = try await anonymousClient.call(Endpoints.Auth.refresh, RefreshRequest(refreshToken: refreshToken))
                    config.remember(response)
                    try config.save()
                    return config
                } catch FlareClientError.refused(let status, _, let message) where status == 401 {
                    config.signOut()
                    try config.save()
                    throw CLIError("you are signed out: \(message) (\(signIn))")
                }
            }
        }
        guard let token = config.accessToken else { throw CLIError("you are not signed in; \(signIn)") }
        return FlareClient(baseURL: resolvedURL, token: token, userAgent: Self.userAgent)
    }
}

/// `--json` for commands whose output scripts read.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of a table.")
    var json = false
}

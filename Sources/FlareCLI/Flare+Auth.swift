import ArgumentParser
import FlareClient
import FlareContracts
import Foundation

extension Flare {
    struct Auth: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign up, sign in and out.",
            subcommands: [Register.self, Login.self, WhoAmI.self, Logout.self])
    }
}

/// Email and password options shared by register and login.
struct CredentialOptions: ParsableArguments {
    @Option(help: "Your email address.")
    var email: String
    @Flag(help: "Read the password from standard input (one line).")
    var passwordStdin = false

    func credentials() throws -> Credentials {
        guard passwordStdin else {
            throw CLIError("pass --password-stdin and the password on standard input, e.g. `echo \"$PW\" | flare auth login --email \(email) --password-stdin`")
        }
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            throw CLIError("no password on standard input")
        }
        return Credentials(email: email, password: line)
    }
}

extension Flare.Auth {
    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an account and sign in.",
            discussion: "Example: echo \"$PASSWORD\" | flare auth register --email you@example.com --password-stdin")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var credentials: CredentialOptions

        func run() async throws {
            let client = FlareClient(baseURL: global.resolvedURL, token: nil)
            let response = try await client.call(Endpoints.Auth.register, try credentials.credentials())
            try saveSignIn(response, url: global.resolvedURL)
            print("Signed up and signed in as \(response.user.email).")
        }
    }

    struct Login: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign in.",
            discussion: "Example: echo \"$PASSWORD\" | flare auth login --email you@example.com --password-stdin")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var credentials: CredentialOptions

        func run() async throws {
            let client = FlareClient(baseURL: global.resolvedURL, token: nil)
            let response = try await client.call(Endpoints.Auth.login, try credentials.credentials())
            try saveSignIn(response, url: global.resolvedURL)
            print("Signed in as \(response.user.email).")
        }
    }

    struct WhoAmI: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Show who you are signed in as.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let user = try await global.authenticatedClient().call(Endpoints.Auth.me)
            if output.json { try printJSON(user) } else { print("\(user.email) (\(user.id)) on \(global.resolvedURL)") }
        }
    }

    struct Logout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign out and revoke this access token (--all: everywhere, cutting open connections).",
            discussion: """
                --all revokes every access token and runtime token of your account and closes your open
                SSH and terminal connections on every gateway.

                Examples:
                  flare auth logout
                  flare auth logout --all
                """)
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Sign out on every machine and cut every open connection.")
        var all = false

        func run() async throws {
            var config = CLIConfig.load()
            if all {
                let result = try await global.authenticatedClient().call(Endpoints.Auth.logoutAll)
                print("Signed out everywhere: revoked \(result.revokedTokens) runtime token(s), "
                    + "closed \(result.closedConnections) connection(s).")
            } else {
                if config.accessToken != nil { _ = try? await global.authenticatedClient().call(Endpoints.Auth.logout) }
                print("Signed out.")
            }
            config.accessToken = nil
            try config.save()
        }
    }
}

func saveSignIn(_ response: AuthResponse, url: String) throws {
    var config = CLIConfig.load()
    config.url = url
    config.accessToken = response.accessToken
    config.email = response.user.email
    try config.save()
}

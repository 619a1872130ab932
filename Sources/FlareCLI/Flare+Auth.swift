import ArgumentParser
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
            let client = APIClient(baseURL: global.resolvedURL, token: nil)
            let response: AuthResponse = try await client.post("/api/auth/register", try credentials.credentials())
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
            let client = APIClient(baseURL: global.resolvedURL, token: nil)
            let response: AuthResponse = try await client.post("/api/auth/login", try credentials.credentials())
            try saveSignIn(response, url: global.resolvedURL)
            print("Signed in as \(response.user.email).")
        }
    }

    struct WhoAmI: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Show who you are signed in as.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let user: UserInfo = try await global.authenticatedClient().get("/api/me")
            if output.json { try printJSON(user) } else { print("\(user.email) (\(user.id)) on \(global.resolvedURL)") }
        }
    }

    struct Logout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sign out and revoke this access token.")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            var config = CLIConfig.load()
            if config.accessToken != nil {
                try? await global.authenticatedClient().post("/api/auth/logout")
            }
            config.accessToken = nil
            try config.save()
            print("Signed out.")
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

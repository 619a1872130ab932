import ArgumentParser
import FlareClient
import FlareContracts
import Foundation

extension Flare {
    struct Auth: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign up, sign in and out.",
            subcommands: [Register.self, Login.self, Approve.self, WhoAmI.self, Logout.self, SignIns.self])
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
            let response = try await global.anonymousClient.call(Endpoints.Auth.register, try credentials.credentials())
            try await saveSignIn(response, url: global.resolvedURL)
            print("Signed up and signed in as \(response.user.email).")
        }
    }

    struct Login: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign in (with a password, or --device: approved where you are signed in).",
            discussion: """
                --device prints a code; approve it with `flare auth approve CODE` on a machine where you
                are signed in. The code expires after 10 minutes.

                Examples:
                  echo "$PASSWORD" | flare auth login --email you@example.com --password-stdin
                  flare auth login --device
                """)
        @OptionGroup var global: GlobalOptions
        @Option(help: "Your email address.")
        var email: String?
        @Flag(help: "Read the password from standard input (one line).")
        var passwordStdin = false
        @Flag(help: "Sign in without a password: a code to approve from a signed-in device.")
        var device = false

        func validate() throws {
            if device, email != nil || passwordStdin { throw ValidationError("--device takes no email or password") }
            if !device, email == nil { throw ValidationError("pass --email and --password-stdin, or --device") }
        }

        func run() async throws {
            let response: AuthResponse
            if device {
                response = try await DeviceLogin.run(client: global.anonymousClient)
            } else {
                let credentials = try CredentialOptions.parse(["--email", email!] + (passwordStdin ? ["--password-stdin"] : []))
                response = try await global.anonymousClient.call(Endpoints.Auth.login, try credentials.credentials())
            }
            try await saveSignIn(response, url: global.resolvedURL)
            print("Signed in as \(response.user.email).")
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve (or --deny) a device's sign-in code.",
            discussion: """
                The device ran `flare auth login --device` and shows the code; it is signed in to your
                account once you approve. Approve only a code you started yourself: the device's address
                and client are shown first, and you are asked to confirm on the terminal (--yes skips that;
                FLARE_CONFIRM_FROM_STDIN=1 reads the answer from a pipe instead).

                Examples:
                  flare auth approve WDJB-MJHT
                  flare auth approve WDJB-MJHT --yes
                  flare auth approve WDJB-MJHT --deny
                """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The code the device shows.")
        var code: String
        @Flag(help: "Refuse the sign-in instead.")
        var deny = false
        @Flag(help: "Approve without asking to confirm.")
        var yes = false

        func run() async throws {
            let client = try await global.authenticatedClient()
            if !deny, !yes {
                let waiting = try await client.call(Endpoints.Auth.deviceLookup, DeviceDecisionRequest(userCode: code))
                printStatus("\(waiting.userCode) is a sign-in by \(waiting.client.isEmpty ? "an unnamed client" : waiting.client) "
                    + "from \(waiting.address). Approve it as you? Only if you started it yourself. [y/N]")
                guard isatty(STDIN_FILENO) != 0 || ProcessInfo.processInfo.environment["FLARE_CONFIRM_FROM_STDIN"] == "1" else {
                    throw CLIError("not approved: no terminal to confirm on; pass --yes to approve without asking")
                }
                guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                    throw CLIError("not approved")
                }
            }
            let endpoint = deny ? Endpoints.Auth.deviceDeny : Endpoints.Auth.deviceApprove
            let result = try await client.call(endpoint, DeviceDecisionRequest(userCode: code))
            if output.json { return try printJSON(result) }
            let device = "\(result.client.isEmpty ? "a device" : result.client) at \(result.address)"
            print(result.approved ? "Approved \(result.userCode): \(device) is signed in as you."
                                  : "Denied \(result.userCode) for \(device).")
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
            if all {
                let result = try await global.authenticatedClient().call(Endpoints.Auth.logoutAll)
                try await CLIConfig.update { $0.signOut() }
                print("Signed out everywhere: revoked \(result.revokedTokens) runtime token(s), "
                    + "closed \(result.closedConnections) connection(s).")
                return
            }
            let config = CLIConfig.load()
            var ended: (any Error)?
            if config.accessToken != nil {
                do {
                    try await global.authenticatedClient().call(Endpoints.Auth.logout)
                } catch {
                    ended = error
                }
            }
            // Forgotten here either way; when the server did not end the sign-in, say how to.
            try await CLIConfig.update { $0.signOut() }
            if let ended {
                let reason = (ended as? FlareClientError)?.advice ?? "\(ended)"
                throw CLIError("signed out here, but the server did not end this sign-in (\(reason)); its refresh token "
                    + "still works until you run `flare auth sessions revoke \(config.signInId ?? "ID")` from a signed-in machine")
            }
            print("Signed out.")
        }
    }

    struct SignIns: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sessions",
            abstract: "List the devices signed in to your account, or end one (`revoke ID`).",
            discussion: """
                Each sign-in is one device: created when it signed in, used when it last refreshed its
                access token (every 15 minutes while in use). Ending one stops its tokens at once and
                cuts its open SSH and terminal connections.

                Examples:
                  flare auth sessions
                  flare auth sessions --json
                  flare auth sessions revoke sgn_0123456789abcdef
                """,
            subcommands: [List.self, Revoke.self], defaultSubcommand: List.self)

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List signed-in devices (the default).")
            @OptionGroup var global: GlobalOptions
            @OptionGroup var output: OutputOptions

            func run() async throws {
                let signIns: [SignInInfo] = try await global.authenticatedClient().all(Endpoints.Auth.signIns)
                if output.json { return try printJSON(signIns) }
                printTable(["ID", "CREATED", "LAST USED", "ADDRESS", "CLIENT"], signIns.map {
                    [$0.id + ($0.current ? " (this one)" : ""), relative($0.createdAt), relative($0.lastUsedAt),
                     $0.address.isEmpty ? "-" : $0.address, $0.client.isEmpty ? "-" : $0.client]
                })
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "End a sign-in: its tokens stop working and its open connections are cut.",
                discussion: "Example: flare auth sessions revoke sgn_0123456789abcdef")
            @OptionGroup var global: GlobalOptions
            @OptionGroup var output: OutputOptions
            @Argument(help: "The sign-in's id, from `flare auth sessions`.")
            var id: String

            func run() async throws {
                let result = try await global.authenticatedClient().call(Endpoints.Auth.revokeSignIn.at(id))
                if output.json { return try printJSON(result) }
                print("Ended sign-in \(id): revoked \(result.revokedTokens) runtime token(s), "
                    + "closed \(result.closedConnections) connection(s).")
                if CLIConfig.load().signInId == id {
                    try await CLIConfig.update { $0.signOut() }
                    print("That was this device's sign-in: you are signed out here.")
                }
            }
        }
    }
}

extension CLIConfig {
    /// Whether the access token is gone or expires within a minute and can be refreshed.
    var needsRefresh: Bool {
        refreshToken != nil && (accessTokenExpiresAt.map { $0.timeIntervalSinceNow < 60 } ?? true)
    }

    /// Keeps the tokens of a sign-in or a refresh.
    mutating func remember(_ response: AuthResponse) {
        accessToken = response.accessToken
        accessTokenExpiresAt = Date().addingTimeInterval(TimeInterval(response.expiresIn))
        refreshToken = response.refreshToken
        signInId = response.signInId
        email = response.user.email
    }
}

func saveSignIn(_ response: AuthResponse, url: String) async throws {
    try await CLIConfig.update { config in
        config.url = url
        config.remember(response)
    }
}

/// `flare auth login --device` (RFC 8628): shows the code, then polls at the server's pace until
/// the code is approved, denied or expires.
enum DeviceLogin {
    static func run(client: FlareClient) async throws -> AuthResponse {
        let codes = try await client.call(Endpoints.Auth.deviceAuthorization, DeviceAuthorizationRequest())
        printStatus("To sign in, run `flare auth approve \(codes.userCode)` where you are signed in")
        printStatus("(or open \(codes.verificationUriComplete)). The code expires in \(codes.expiresIn / 60) minutes.")
        var interval = codes.interval
        let deadline = Date().addingTimeInterval(TimeInterval(codes.expiresIn))
        while Date() < deadline {
            try await Task.sleep(for: .seconds(interval))
            do {
                return try await client.call(Endpoints.Auth.deviceToken, DeviceTokenRequest(deviceCode: codes.deviceCode))
            } catch FlareClientError.refused(_, let code, let message) {
                switch code {
                case "authorization_pending": continue
                case "slow_down": interval += 5
                case "access_denied": throw CLIError("the sign-in was denied")
                case "expired_token": throw CLIError("the code expired before it was approved; run `flare auth login --device` again")
                default: throw CLIError(message)
                }
            }
        }
        throw CLIError("the code expired before it was approved; run `flare auth login --device` again")
    }
}

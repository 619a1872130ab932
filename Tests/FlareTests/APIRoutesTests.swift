@testable import ControlPlane
import Crypto
import FlareContracts
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// Every route through the real router, store and validation; each test has its own data dir.
@Suite struct APIRoutesTests {
    struct Harness {
        let directory: TemporaryDirectory
        let server: ControlPlaneServer

        init() throws {
            directory = try TemporaryDirectory()
            var configuration = ControlPlaneConfiguration(
                dataDirectory: directory.url.appendingPathComponent("data"),
                agentExecutable: TestProcess.binary("flare-agent"))
            configuration.bcryptCost = 4
            server = try ControlPlaneServer(configuration: configuration, logger: Logger(label: "test"))
        }

        func run(_ body: @Sendable @escaping (any TestClientProtocol) async throws -> Void) async throws {
            let app = Application(router: server.makeRouter())
            try await app.test(.router) { try await body($0) }
        }
    }

    static func json(_ value: some Encodable) -> ByteBuffer {
        ByteBuffer(data: try! FlareJSON.encoder().encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
        try FlareJSON.decoder().decode(T.self, from: Data(buffer: response.body))
    }

    static func decoded<T: Decodable>(_ type: T.Type, _ response: TestResponse) -> T? {
        try? decode(type, response)
    }

    static func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

    static func register(_ client: any TestClientProtocol, _ email: String) async throws -> String {
        try await client.execute(uri: "/api/auth/register", method: .post,
                                 body: json(Credentials(email: email, password: "correct horse"))) {
            #expect($0.status == .created)
            return try decode(AuthResponse.self, $0).accessToken
        }
    }

    /// Registers a user with a promoted template and a session named `dev`; returns the token and session.
    static func userWithSession(_ client: any TestClientProtocol, _ email: String) async throws -> (String, SessionInfo) {
        let token = try await register(client, email)
        try await client.execute(uri: "/api/templates", method: .post, headers: bearer(token),
                                 body: json(TemplateCreateRequest(name: "base"))) { #expect($0.status == .created) }
        try await client.execute(uri: "/api/templates/base/versions", method: .post, headers: bearer(token),
                                 body: ByteBuffer(string: #"{"version":"1","manifest":{"image":"debian"}}"#)) {
            #expect($0.status == .created)
        }
        try await client.execute(uri: "/api/templates/base/promote", method: .post, headers: bearer(token),
                                 body: ByteBuffer(string: #"{"version":"1"}"#)) { #expect($0.status == .ok) }
        let session = try await client.execute(uri: "/api/sessions", method: .post, headers: bearer(token),
                                               body: json(SessionCreateRequest(name: "dev", template: "base"))) {
            #expect($0.status == .created)
            return try decode(SessionInfo.self, $0)
        }
        return (token, session)
    }

    @Test func healthNeedsNoAuth() async throws {
        try await Harness().run { client in
            try await client.execute(uri: "/api/health", method: .get) {
                #expect($0.status == .ok)
                #expect(Self.decoded(HealthResponse.self, $0)?.status == "ok")
            }
        }
    }

    @Test func registerLoginMeLogout() async throws {
        try await Harness().run { client in
            let token = try await Self.register(client, "Ada@Example.com")
            try await client.execute(uri: "/api/me", method: .get, headers: Self.bearer(token)) {
                #expect(Self.decoded(UserInfo.self, $0)?.email == "ada@example.com")
            }
            let second = try await client.execute(
                uri: "/api/auth/login", method: .post,
                body: Self.json(Credentials(email: "ada@example.com", password: "correct horse"))) {
                #expect($0.status == .ok)
                return try Self.decode(AuthResponse.self, $0).accessToken
            }
            try await client.execute(uri: "/api/auth/logout", method: .post, headers: Self.bearer(second)) {
                #expect($0.status == .noContent)
            }
            try await client.execute(uri: "/api/me", method: .get, headers: Self.bearer(second)) {
                #expect($0.status == .unauthorized)
            }
            // The other token is untouched.
            try await client.execute(uri: "/api/me", method: .get, headers: Self.bearer(token)) { #expect($0.status == .ok) }
        }
    }

    @Test func wrongPasswordAndUnknownEmailGetTheSameAnswer() async throws {
        try await Harness().run { client in
            _ = try await Self.register(client, "a@b.co")
            let wrongPassword = try await client.execute(
                uri: "/api/auth/login", method: .post, body: Self.json(Credentials(email: "a@b.co", password: "nope-nope"))) {
                #expect($0.status == .unauthorized)
                return try Self.decode(ErrorBody.self, $0).error
            }
            let unknownEmail = try await client.execute(
                uri: "/api/auth/login", method: .post, body: Self.json(Credentials(email: "x@b.co", password: "nope-nope"))) {
                #expect($0.status == .unauthorized)
                return try Self.decode(ErrorBody.self, $0).error
            }
            #expect(wrongPassword.code == "invalid_credentials")
            #expect(wrongPassword.message == unknownEmail.message)
            #expect(!wrongPassword.requestId.isEmpty)
        }
    }

    @Test func duplicateEmailIsAConflict() async throws {
        try await Harness().run { client in
            _ = try await Self.register(client, "a@b.co")
            try await client.execute(uri: "/api/auth/register", method: .post,
                                     body: Self.json(Credentials(email: "A@B.CO", password: "password99"))) {
                #expect($0.status == .conflict)
                #expect(Self.decoded(ErrorBody.self, $0)?.error.code == "email_taken")
            }
        }
    }

    @Test func malformedEmailsAreRefusedAndNothingIsStored() async throws {
        try await Harness().run { client in
            let bad = ["no-at-sign", "@b.co", "a@b", "a@.b.co", "a@b..co", "a@-b.co", "a b@c.co", "a\u{0}@b.co",
                       "a\u{1b}[31m@b.co", "\"a\"@b.co", "a<b>@c.co", "a\u{200b}b@c.co",
                       String(repeating: "x", count: 65) + "@b.co"]
            for email in bad {
                try await client.execute(uri: "/api/auth/register", method: .post,
                                         body: Self.json(Credentials(email: email, password: "password99"))) {
                    #expect($0.status == .badRequest, "\(email.debugDescription)")
                    #expect(Self.decoded(ErrorBody.self, $0)?.error.code == "invalid_email", "\(email.debugDescription)")
                }
            }
            // (Sign-in is rate-limited at 10 a minute per address: check a few.)
            for email in bad.prefix(6) {
                try await client.execute(uri: "/api/auth/login", method: .post,
                                         body: Self.json(Credentials(email: email, password: "password99"))) {
                    #expect($0.status == .unauthorized, "no account was made for \(email.debugDescription)")
                }
            }
            _ = try await Self.register(client, "o'brien+dev@mail.example.co")
        }
    }

    @Test func malformedBodiesGetTheErrorShape() async throws {
        try await Harness().run { client in
            try await client.execute(uri: "/api/auth/register", method: .post, body: ByteBuffer(string: "{\"email\":")) {
                #expect($0.status == .badRequest)
                #expect(Self.decoded(ErrorBody.self, $0)?.error.code == "invalid_request")
            }
            try await client.execute(uri: "/api/auth/register", method: .post, body: ByteBuffer(string: "{\"email\":\"a@b.co\"}")) {
                #expect($0.status == .badRequest)
                #expect(Self.decoded(ErrorBody.self, $0)?.error.message == "password is required")
            }
            try await client.execute(uri: "/api/auth/register", method: .post,
                                     body: Self.json(Credentials(email: "a@b.co", password: "short"))) {
                #expect($0.status == .badRequest)
                #expect(Self.decoded(ErrorBody.self, $0)?.error.code == "weak_password")
            }
            try await client.execute(uri: "/api/auth/register", method: .post,
                                     body: ByteBuffer(string: String(repeating: "x", count: 200_000))) {
                #expect($0.status == .contentTooLarge)
            }
            try await client.execute(uri: "/api/nowhere", method: .get) {
                #expect($0.status == .notFound)
                #expect(Self.decoded(ErrorBody.self, $0)?.error.code == "not_found")
            }
            try await client.execute(uri: "/api/sessions", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/sessions", method: .get, headers: Self.bearer("flr_forged")) {
                #expect($0.status == .unauthorized)
            }
        }
    }

    @Test func sshKeysAddListDelete() async throws {
        try await Harness().run { client in
            let token = try await Self.register(client, "a@b.co")
            let pair = OpenSSHKeyPair.generateEd25519(comment: "laptop")
            let added = try await client.execute(uri: "/api/ssh-keys", method: .post, headers: Self.bearer(token),
                                                 body: Self.json(SSHKeyCreateRequest(name: nil, publicKey: pair.publicKeyLine))) {
                #expect($0.status == .created)
                return try Self.decode(SSHKeyInfo.self, $0)
            }
            #expect(added.name == "laptop")
            #expect(added.fingerprint == SSHPublicKey(line: pair.publicKeyLine)?.fingerprint)
            try await client.execute(uri: "/api/ssh-keys", method: .post, headers: Self.bearer(token),
                                     body: Self.json(SSHKeyCreateRequest(name: nil, publicKey: pair.publicKeyLine))) {
                #expect($0.status == .conflict)
            }
            try await client.execute(uri: "/api/ssh-keys", method: .post, headers: Self.bearer(token),
                                     body: Self.json(SSHKeyCreateRequest(name: nil, publicKey: "ssh-ed25519 garbage"))) {
                #expect($0.status == .badRequest)
            }
            try await client.execute(uri: "/api/ssh-keys", method: .get, headers: Self.bearer(token)) {
                #expect(Self.decoded([SSHKeyInfo].self, $0)?.map(\.id) == [added.id])
            }
            let other = try await Self.register(client, "c@d.co")
            try await client.execute(uri: "/api/ssh-keys/\(added.id)", method: .delete, headers: Self.bearer(other)) {
                #expect($0.status == .notFound)
            }
            try await client.execute(uri: "/api/ssh-keys/\(added.id)", method: .delete, headers: Self.bearer(token)) {
                #expect($0.status == .noContent)
            }
        }
    }

    @Test func templatesAndSessionsByNameOrId() async throws {
        try await Harness().run { client in
            let (token, session) = try await Self.userWithSession(client, "a@b.co")
            #expect(session.state == .created)
            #expect(session.templateVersion == "1")
            #expect(session.hostPublicKey.hasPrefix("ssh-ed25519 "))
            for reference in ["dev", session.id] {
                try await client.execute(uri: "/api/sessions/\(reference)", method: .get, headers: Self.bearer(token)) {
                    #expect(Self.decoded(SessionInfo.self, $0)?.id == session.id)
                }
            }
            try await client.execute(uri: "/api/sessions/dev/events", method: .get, headers: Self.bearer(token)) {
                let events = try Self.decode([SessionEvent].self, $0)
                #expect(events.map(\.toState) == [.created])
            }
            try await client.execute(uri: "/api/sessions", method: .post, headers: Self.bearer(token),
                                     body: Self.json(SessionCreateRequest(name: "dev", template: "base"))) {
                #expect($0.status == .conflict)
            }
            try await client.execute(uri: "/api/templates/base/versions", method: .post, headers: Self.bearer(token),
                                     body: ByteBuffer(string: #"{"version":"2","manifest":{"image":"x","persistedPaths":["home"]}}"#)) {
                #expect($0.status == .badRequest)
                #expect(Self.decoded(ErrorBody.self, $0)?.error.message
                    == "manifest.persistedPaths[0] must be an absolute path")
            }
            try await client.execute(uri: "/api/templates", method: .post, headers: Self.bearer(token),
                                     body: Self.json(TemplateCreateRequest(name: "empty"))) { #expect($0.status == .created) }
            try await client.execute(uri: "/api/sessions", method: .post, headers: Self.bearer(token),
                                     body: Self.json(SessionCreateRequest(name: "x", template: "empty"))) {
                #expect($0.status == .conflict)
                #expect(Self.decoded(ErrorBody.self, $0)?.error.code == "template_not_promoted")
            }
            try await client.execute(uri: "/api/sessions/dev", method: .delete, headers: Self.bearer(token)) {
                #expect($0.status == .noContent)
            }
            try await client.execute(uri: "/api/sessions/dev", method: .get, headers: Self.bearer(token)) {
                #expect($0.status == .notFound)
            }
        }
    }

    @Test func anotherUsersSessionIsNotFound() async throws {
        try await Harness().run { client in
            let (_, session) = try await Self.userWithSession(client, "a@b.co")
            let intruder = try await Self.register(client, "evil@b.co")
            for (uri, method) in [("/api/sessions/\(session.id)", HTTPRequest.Method.get),
                                  ("/api/sessions/\(session.id)/start", .post),
                                  ("/api/sessions/\(session.id)/events", .get),
                                  ("/api/sessions/\(session.id)", .delete)] {
                try await client.execute(uri: uri, method: method, headers: Self.bearer(intruder)) {
                    #expect($0.status == .notFound, "\(method) \(uri)")
                }
            }
            try await client.execute(uri: "/api/sessions/\(session.id)/runtime-token", method: .post,
                                     headers: Self.bearer(intruder), body: Self.json(RuntimeTokenRequest(purpose: .ssh))) {
                #expect($0.status == .notFound)
            }
        }
    }

    @Test func gatewayChecksTokensBeforeUpgrading() async throws {
        let harness = try Harness()
        let signingKey = try Curve25519.Signing.PrivateKey(rawRepresentation: Data(contentsOf:
            harness.directory.url.appendingPathComponent("data/runtime-token-ed25519.key")))
        try await harness.run { client in
            let (token, session) = try await Self.userWithSession(client, "a@b.co")
            let issued = try await client.execute(uri: "/api/sessions/dev/runtime-token", method: .post,
                                                  headers: Self.bearer(token), body: Self.json(RuntimeTokenRequest(purpose: .ssh))) {
                #expect($0.status == .created)
                return try Self.decode(RuntimeTokenResponse.self, $0)
            }
            #expect(issued.expiresAt.timeIntervalSinceNow <= 300 && issued.expiresAt.timeIntervalSinceNow > 280)
            let upgrade: HTTPFields = [.connection: "Upgrade", .upgrade: "websocket", .secWebSocketVersion: "13",
                                       .secWebSocketKey: "dGhlIHNhbXBsZSBub25jZQ=="]
            func attempt(_ token: String?, session id: String = session.id) async throws -> (HTTPResponse.Status, String) {
                var headers = upgrade
                if let token { headers[.authorization] = "Bearer \(token)" }
                return try await client.execute(uri: "/gateway/ssh/\(id)", method: .get, headers: headers) {
                    ($0.status, (try? Self.decode(ErrorBody.self, $0).error.code) ?? "")
                }
            }
            #expect(try await attempt(nil) == (.unauthorized, "token_missing"))
            let forged = try RuntimeToken.sign(RuntimeTokenClaims(
                id: "rt_x", sessionId: session.id, userId: "usr_x", purpose: .ssh, issuedAt: Date(),
                expiresAt: Date().addingTimeInterval(60)), with: Curve25519.Signing.PrivateKey())
            #expect(try await attempt(forged) == (.unauthorized, "token_invalid"))
            let expired = try RuntimeToken.sign(RuntimeTokenClaims(
                id: issued.token, sessionId: session.id, userId: "usr_x", purpose: .ssh,
                issuedAt: Date().addingTimeInterval(-400), expiresAt: Date().addingTimeInterval(-100)), with: signingKey)
            #expect(try await attempt(expired) == (.unauthorized, "token_expired"))
            #expect(try await attempt(issued.token, session: "ses_other") == (.forbidden, "token_wrong_session"))
            let terminal = try await client.execute(uri: "/api/sessions/dev/runtime-token", method: .post,
                                                    headers: Self.bearer(token), body: Self.json(RuntimeTokenRequest(purpose: .terminal))) {
                try Self.decode(RuntimeTokenResponse.self, $0).token
            }
            #expect(try await attempt(terminal) == (.forbidden, "token_wrong_purpose"))
            // A genuine token for a session deleted since: revoked with it, no upgrade.
            try await client.execute(uri: "/api/sessions/dev", method: .delete, headers: Self.bearer(token)) {
                #expect($0.status == .noContent)
            }
            #expect(try await attempt(issued.token) == (.unauthorized, "token_revoked"))
        }
    }

    @Test func gatewayRoutesNeedTheGatewayTokenAndAnswerWithTheSessionsEndpoint() async throws {
        let harness = try Harness()
        let gatewayToken = try String(contentsOf: harness.directory.url.appendingPathComponent("data/gateway-token"),
                                      encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try await harness.run { client in
            let (token, session) = try await Self.userWithSession(client, "a@b.co")
            let runtime = try await client.execute(uri: "/api/sessions/dev/runtime-token", method: .post,
                                                   headers: Self.bearer(token),
                                                   body: Self.json(RuntimeTokenRequest(purpose: .ssh))) {
                try Self.decode(RuntimeTokenResponse.self, $0).token
            }
            let resolve = Self.json(GatewayResolveRequest(token: runtime))
            // Without the gateway token, or with a user's access token: refused.
            for headers in [HTTPFields(), Self.bearer(token)] {
                try await client.execute(uri: "/gateway/v1/resolve", method: .post, headers: headers, body: resolve) {
                    #expect($0.status == .unauthorized)
                    #expect(Self.decoded(ErrorBody.self, $0)?.error.code == "invalid_gateway_token")
                }
            }
            try await client.execute(uri: "/gateway/v1/register", method: .post, headers: Self.bearer(gatewayToken),
                                     body: Self.json(GatewayRegisterRequest(serviceKey: "not a key", name: "gw"))) {
                #expect($0.status == .badRequest)
            }
            let registered = try await client.execute(
                uri: "/gateway/v1/register", method: .post, headers: Self.bearer(gatewayToken),
                body: Self.json(GatewayRegisterRequest(serviceKey: OpenSSHKeyPair.generateEd25519(comment: "gw").publicKeyLine,
                                                       name: "gw"))) {
                #expect($0.status == .ok)
                return try Self.decode(GatewayRegisterResponse.self, $0)
            }
            #expect(Data(base64Encoded: registered.runtimeTokenPublicKey)?.count == 32)
            // A forged token is refused; the session is not started (it is `created`).
            try await client.execute(uri: "/gateway/v1/resolve", method: .post, headers: Self.bearer(gatewayToken),
                                     body: Self.json(GatewayResolveRequest(token: "frt1.e30.AAAA"))) {
                #expect($0.status == .unauthorized)
            }
            // Check: a token of a deleted session has lost access; an unknown id too.
            try await client.execute(uri: "/api/sessions/dev", method: .delete, headers: Self.bearer(token)) {
                #expect($0.status == .noContent)
            }
            let claims = try #require(runtime.split(separator: ".").dropFirst().first.flatMap { Base64URL.decode(String($0)) })
            let tokenId = try #require(try JSONSerialization.jsonObject(with: claims) as? [String: Any])["jti"] as? String
            try await client.execute(uri: "/gateway/v1/check", method: .post, headers: Self.bearer(gatewayToken),
                                     body: Self.json(GatewayCheckRequest(tokenIds: [try #require(tokenId), "rt_unknown"]))) {
                #expect(Self.decoded(GatewayCheckResponse.self, $0)?.revokedTokenIds.sorted() == [tokenId!, "rt_unknown"].sorted())
            }
            _ = session
        }
    }

    @Test func logoutEverywhereRevokesEveryTokenOfTheUser() async throws {
        let harness = try Harness()
        try await harness.run { client in
            let (first, _) = try await Self.userWithSession(client, "a@b.co")
            let second = try await client.execute(uri: "/api/auth/login", method: .post,
                                                  body: Self.json(Credentials(email: "a@b.co", password: "correct horse"))) {
                try Self.decode(AuthResponse.self, $0).accessToken
            }
            for purpose in [RuntimeTokenPurpose.ssh, .terminal] {
                try await client.execute(uri: "/api/sessions/dev/runtime-token", method: .post, headers: Self.bearer(first),
                                         body: Self.json(RuntimeTokenRequest(purpose: purpose))) { #expect($0.status == .created) }
            }
            try await client.execute(uri: "/api/auth/logout-all", method: .post, headers: Self.bearer(second)) {
                #expect($0.status == .ok)
                #expect(Self.decoded(RevokeResponse.self, $0)?.revokedTokens == 2)
            }
            for token in [first, second] {
                try await client.execute(uri: "/api/me", method: .get, headers: Self.bearer(token)) {
                    #expect($0.status == .unauthorized)
                }
            }
        }
    }

    /// Lists come in pages: `limit` items at most, the next page named by a `Link` header until
    /// the last; a cursor that is not an item of the caller's list, or a limit out of range, is a 400.
    @Test func sessionAndTemplateListsArePagedByCursor() async throws {
        try await Harness().run { client in
            let (token, first) = try await Self.userWithSession(client, "pager@example.com")
            for name in ["b", "c", "d", "e"] {
                try await client.execute(uri: "/api/sessions", method: .post, headers: Self.bearer(token),
                                         body: Self.json(SessionCreateRequest(name: name, template: "base"))) {
                    #expect($0.status == .created)
                }
            }
            var names: [String] = []
            var next: String? = "/api/sessions?limit=2"
            var pages = 0
            while let page = next, pages < 10 {
                next = try await client.execute(uri: page, method: .get, headers: Self.bearer(token)) { response in
                    #expect(response.status == .ok)
                    let items = try Self.decode([SessionInfo].self, response)
                    #expect(items.count <= 2)
                    names += items.map(\.name)
                    return response.headers[HTTPField.Name("Link")!].flatMap { link in
                        link.split(separator: "<").last?.split(separator: ">").first.map(String.init)
                    }
                }
                pages += 1
            }
            #expect(names == ["dev", "b", "c", "d", "e"], "oldest first, each once")
            #expect(pages == 3)
            // Without a limit: the first 100, no next page here.
            try await client.execute(uri: "/api/sessions", method: .get, headers: Self.bearer(token)) { response in
                let listed = try Self.decode([SessionInfo].self, response)
                #expect(listed.count == 5)
                #expect(response.headers[HTTPField.Name("Link")!] == nil)
            }
            for bad in ["/api/sessions?limit=0", "/api/sessions?limit=1001", "/api/sessions?limit=x",
                        "/api/sessions?cursor=ses_nope", "/api/templates?cursor=tpl_nope"] {
                try await client.execute(uri: bad, method: .get, headers: Self.bearer(token)) {
                    #expect($0.status == .badRequest, "\(bad)")
                }
            }
            // Another account's session is not a cursor of this list.
            let other = try await Self.register(client, "other-pager@example.com")
            try await client.execute(uri: "/api/sessions?cursor=\(first.id)", method: .get, headers: Self.bearer(other)) {
                #expect($0.status == .badRequest)
                #expect(String(buffer: $0.body).contains("invalid_cursor"))
            }
            try await client.execute(uri: "/api/templates?limit=1", method: .get, headers: Self.bearer(token)) { response in
                let templates = try Self.decode([TemplateInfo].self, response)
                #expect(templates.map(\.name) == ["base"] && templates.first?.versions.count == 1)
                #expect(response.headers[HTTPField.Name("Link")!] == nil)
            }
        }
    }

    /// The list is written straight from the database rows; each of its items must be byte for
    /// byte what the session's own route answers, whatever the state, reason text, activity and dates.
    @Test func listedSessionsAreWhatTheirOwnRouteShows() async throws {
        let harness = try Harness()
        let store = harness.server.store
        try await harness.run { client in
            let (token, _) = try await Self.userWithSession(client, "lister@example.com")
            for index in 0..<12 {
                try await client.execute(uri: "/api/sessions", method: .post, headers: Self.bearer(token),
                                         body: Self.json(SessionCreateRequest(name: "s\(index)", template: "base"))) {
                    #expect($0.status == .created)
                }
            }
            let created = try await client.execute(uri: "/api/sessions", method: .get, headers: Self.bearer(token)) {
                try Self.decode([SessionInfo].self, $0)
            }
            // A way to each live state, through the machine.
            let paths: [[SessionStateMachine.Command]] = [[], [.start], [.start, .agentReady], [.start, .stop],
                                                          [.start, .stop, .stopped], [.start, .agentFailed]]
            for (index, session) in created.enumerated() {
                for command in paths[index % paths.count] {
                    _ = try await store.transition(
                        sessionId: session.id, command, reason: "\(command) \(index): \"quoted\" \\ tab\t newline\n é 🚀 \u{1}")
                }
                let at = Date(timeIntervalSince1970: 1_764_000_000 + Double(index) * 86_399.0 + Double(index * 37 % 1000) / 1000)
                let activity = AgentHeartbeat(openConnections: index, openChannels: 1, bytesIn: UInt64(index) << 40,
                                              bytesOut: 5, lastInputAt: index % 2 == 0 ? at : nil, lastConnectionAt: at)
                let json = String(decoding: try FlareJSON.encoder().encode(activity), as: UTF8.self)
                try await store.updateSession(id: session.id) {
                    $0.lastHeartbeatAt = index % 3 == 0 ? nil : at
                    $0.activityJson = index % 4 == 1 ? nil : json
                    $0.updatedAt = at
                }
            }
            let listed = try await client.execute(uri: "/api/sessions", method: .get, headers: Self.bearer(token)) {
                #expect($0.status == .ok)
                #expect($0.headers[.contentType] == "application/json; charset=utf-8")
                return String(buffer: $0.body)
            }
            var singles: [String] = []
            for session in created {
                singles.append(try await client.execute(uri: "/api/sessions/\(session.id)", method: .get,
                                                        headers: Self.bearer(token)) { String(buffer: $0.body) })
            }
            #expect(listed == "[" + singles.joined(separator: ",") + "]")
            let decoded = try FlareJSON.decoder().decode([SessionInfo].self, from: Data(listed.utf8))
            #expect(decoded.count == 13)
            #expect(decoded.filter { $0.activity != nil }.allSatisfy { $0.state == .running })
            #expect(decoded.contains { $0.activity?.bytesIn == 2 << 40 })
        }
    }

    /// Follows a list's `Link` headers from `path`; returns the pages' items.
    static func allPages<T: Decodable>(_ client: any TestClientProtocol, _ path: String, token: String,
                                       as type: T.Type) async throws -> [[T]] {
        var pages: [[T]] = []
        var next: String? = path
        while let page = next, pages.count < 20 {
            next = try await client.execute(uri: page, method: .get, headers: bearer(token)) { response in
                #expect(response.status == .ok, "\(page)")
                pages.append(try decode([T].self, response))
                return response.headers[HTTPField.Name("Link")!].flatMap { link in
                    link.split(separator: "<").last?.split(separator: ">").first.map(String.init)
                }
            }
        }
        return pages
    }

    /// A session's events and an account's SSH keys are paged the same way, and a cursor from
    /// another session or account is refused.
    @Test func eventsAndKeysArePagedByCursor() async throws {
        let harness = try Harness()
        let store = harness.server.store
        try await harness.run { client in
            let (token, session) = try await Self.userWithSession(client, "events@example.com")
            for command: SessionStateMachine.Command in [.start, .agentReady, .stop, .stopped] {
                _ = try await store.transition(sessionId: session.id, command, reason: "\(command)")
            }
            let pages = try await Self.allPages(client, "/api/sessions/dev/events?limit=2", token: token, as: SessionEvent.self)
            #expect(pages.map(\.count) == [2, 2, 1])
            #expect(pages.flatMap { $0 }.map(\.toState) == [.created, .starting, .running, .stopping, .sleeping])
            for _ in 0..<3 {
                try await client.execute(uri: "/api/ssh-keys", method: .post, headers: Self.bearer(token),
                                         body: Self.json(SSHKeyCreateRequest(
                                            name: nil, publicKey: OpenSSHKeyPair.generateEd25519(comment: "k").publicKeyLine))) {
                    #expect($0.status == .created)
                }
            }
            let keys = try await Self.allPages(client, "/api/ssh-keys?limit=2", token: token, as: SSHKeyInfo.self)
            #expect(keys.map(\.count) == [2, 1])
            #expect(Set(keys.flatMap { $0 }.map(\.id)).count == 3)

            let (other, _) = try await Self.userWithSession(client, "events-other@example.com")
            let firstEvent = pages[0][0].id
            for (path, bearer) in [("/api/sessions/dev/events?cursor=\(firstEvent)", other),
                                   ("/api/sessions/dev/events?cursor=abc", token),
                                   ("/api/ssh-keys?cursor=\(keys[0][0].id)", other)] {
                try await client.execute(uri: path, method: .get, headers: Self.bearer(bearer)) {
                    #expect($0.status == .badRequest, "\(path)")
                    #expect(String(buffer: $0.body).contains("invalid_cursor"))
                }
            }
        }
    }

    /// The sign-in lookup is one statement that checks expiry and revocation itself: a token past
    /// its expiry, or revoked, is refused on every route, while a live one next to them works.
    @Test func expiredAndRevokedAccessTokensAreRefused() async throws {
        let harness = try Harness()
        let store = harness.server.store
        try await harness.run { client in
            _ = try await Self.register(client, "tokens@example.com")
            let user = try #require(try await store.user(email: "tokens@example.com"))
            let now = Date()
            for (secret, expires, revoked) in [("live-secret", now.addingTimeInterval(600), nil as Date?),
                                               ("expired-secret", now.addingTimeInterval(-1), nil),
                                               ("revoked-secret", now.addingTimeInterval(600), now)] {
                try await store.insertAccessToken(AccessTokenRecord(
                    tokenHash: SessionLifecycle.hash(secret), userId: user.id, createdAt: now.addingTimeInterval(-60),
                    expiresAt: expires, revokedAt: revoked))
            }
            for path in ["/api/me", "/api/sessions"] {
                try await client.execute(uri: path, method: .get, headers: Self.bearer("live-secret")) {
                    #expect($0.status == .ok, "\(path)")
                }
                for secret in ["expired-secret", "revoked-secret", "never-issued"] {
                    try await client.execute(uri: path, method: .get, headers: Self.bearer(secret)) {
                        #expect($0.status == .unauthorized, "\(secret) on \(path)")
                        #expect(String(buffer: $0.body).contains("invalid_token"))
                    }
                }
            }
        }
    }
}

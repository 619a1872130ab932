@testable import ControlPlane
import Crypto
import FlareClient
import FlareContracts
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// Every route through the real router, store and validation, on a live port; each test has its
/// own data dir. Calls go through ``FlareClient`` and the ``Endpoints`` contract; the raw client
/// (`raw`) sends what a well-behaved client cannot: malformed bodies, forged headers, exact bytes.
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

        func run(_ body: @Sendable @escaping (_ raw: any TestClientProtocol, _ api: FlareClient) async throws -> Void)
            async throws
        {
            // The server's own HTTP stack (header deadline, WebSocket upgrade), on a free port.
            try await server.makeApplication().test(.live) { raw in
                let port = try #require(raw.port)
                try await body(raw, FlareClient(baseURL: "http://127.0.0.1:\(port)", token: nil, timeout: .seconds(30)))
            }
        }
    }

    static func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

    static func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
        try FlareJSON.decoder().decode(T.self, from: Data(buffer: response.body))
    }

    static func decoded<T: Decodable>(_ type: T.Type, _ response: TestResponse) -> T? {
        try? decode(type, response)
    }

    /// The server's refusal of a call that should fail; nil (and a failed expectation) if it succeeded.
    static func refusal(_ call: () async throws -> some Any, sourceLocation: SourceLocation = #_sourceLocation) async
        -> FlareClientError?
    {
        do {
            _ = try await call()
            Issue.record("the call succeeded", sourceLocation: sourceLocation)
            return nil
        } catch let error as FlareClientError {
            return error
        } catch {
            Issue.record("not a refusal: \(error)", sourceLocation: sourceLocation)
            return nil
        }
    }

    /// A signed-in client for a new account.
    static func register(_ api: FlareClient, _ email: String) async throws -> FlareClient {
        let response = try await api.call(Endpoints.Auth.register, Credentials(email: email, password: "correct horse"))
        return api.authenticated(response.accessToken)
    }

    /// Registers a user with a promoted template and a session named `dev`; their client and the session.
    static func userWithSession(_ api: FlareClient, _ email: String) async throws -> (FlareClient, SessionInfo) {
        let user = try await register(api, email)
        try await user.call(Endpoints.Templates.create, TemplateCreateRequest(name: "base"))
        try await user.call(Endpoints.Templates.createVersion.at("base"),
                            .object(["version": .string("1"), "manifest": .object(["image": .string("debian")])]))
        try await user.call(Endpoints.Templates.promote.at("base"), TemplatePromoteRequest(version: "1"))
        let session = try await user.call(Endpoints.Sessions.create, SessionCreateRequest(name: "dev", template: "base"))
        return (user, session)
    }

    @Test func healthNeedsNoAuth() async throws {
        try await Harness().run { _, api in
            let health = try await api.call(Endpoints.health)
            #expect(health.status == "ok" && health.version == FlareVersion.current)
        }
    }

    @Test func registerLoginMeLogout() async throws {
        try await Harness().run { _, api in
            let first = try await Self.register(api, "Ada@Example.com")
            #expect(try await first.call(Endpoints.Auth.me).email == "ada@example.com")
            let login = try await api.call(Endpoints.Auth.login, Credentials(email: "ada@example.com", password: "correct horse"))
            let second = api.authenticated(login.accessToken)
            try await second.call(Endpoints.Auth.logout)
            #expect(await Self.refusal { try await second.call(Endpoints.Auth.me) }?.status == 401)
            // The other token is untouched.
            #expect(try await first.call(Endpoints.Auth.me).email == "ada@example.com")
        }
    }

    @Test func wrongPasswordAndUnknownEmailGetTheSameAnswer() async throws {
        try await Harness().run { raw, api in
            _ = try await Self.register(api, "a@b.co")
            func login(_ email: String) async throws -> ErrorBody.Detail {
                let body = ByteBuffer(data: try FlareJSON.encoder().encode(Credentials(email: email, password: "nope-nope")))
                return try await raw.execute(uri: Endpoints.Auth.login.path, method: .post, body: body) {
                    #expect($0.status == .unauthorized)
                    return try Self.decode(ErrorBody.self, $0).error
                }
            }
            let wrongPassword = try await login("a@b.co")
            let unknownEmail = try await login("x@b.co")
            #expect(wrongPassword.code == "invalid_credentials")
            #expect(wrongPassword.message == unknownEmail.message)
            #expect(!wrongPassword.requestId.isEmpty)
        }
    }

    @Test func duplicateEmailIsAConflict() async throws {
        try await Harness().run { _, api in
            _ = try await Self.register(api, "a@b.co")
            let refused = await Self.refusal {
                try await api.call(Endpoints.Auth.register, Credentials(email: "A@B.CO", password: "password99"))
            }
            #expect(refused?.status == 409 && refused?.code == "email_taken")
        }
    }

    @Test func malformedEmailsAreRefusedAndNothingIsStored() async throws {
        try await Harness().run { _, api in
            let bad = ["no-at-sign", "@b.co", "a@b", "a@.b.co", "a@b..co", "a@-b.co", "a b@c.co", "a\u{0}@b.co",
                       "a\u{1b}[31m@b.co", "\"a\"@b.co", "a<b>@c.co", "a\u{200b}b@c.co",
                       String(repeating: "x", count: 65) + "@b.co"]
            for email in bad {
                let refused = await Self.refusal {
                    try await api.call(Endpoints.Auth.register, Credentials(email: email, password: "password99"))
                }
                #expect(refused?.status == 400 && refused?.code == "invalid_email", "\(email.debugDescription)")
            }
            // (Sign-in is rate-limited at 10 a minute per address: check a few.)
            for email in bad.prefix(6) {
                let refused = await Self.refusal {
                    try await api.call(Endpoints.Auth.login, Credentials(email: email, password: "password99"))
                }
                #expect(refused?.status == 401, "no account was made for \(email.debugDescription)")
            }
            _ = try await Self.register(api, "o'brien+dev@mail.example.co")
        }
    }

    @Test func malformedBodiesGetTheErrorShape() async throws {
        try await Harness().run { raw, api in
            let register = Endpoints.Auth.register.path
            try await raw.execute(uri: register, method: .post, body: ByteBuffer(string: "{\"email\":")) {
                #expect($0.status == .badRequest)
                #expect(Self.decoded(ErrorBody.self, $0)?.error.code == "invalid_request")
            }
            try await raw.execute(uri: register, method: .post, body: ByteBuffer(string: "{\"email\":\"a@b.co\"}")) {
                #expect($0.status == .badRequest)
                #expect(Self.decoded(ErrorBody.self, $0)?.error.message == "password is required")
            }
            let weak = await Self.refusal {
                try await api.call(Endpoints.Auth.register, Credentials(email: "a@b.co", password: "short"))
            }
            #expect(weak?.status == 400 && weak?.code == "weak_password")
            try await raw.execute(uri: register, method: .post, body: ByteBuffer(string: String(repeating: "x", count: 200_000))) {
                #expect($0.status == .contentTooLarge)
            }
            try await raw.execute(uri: "/api/nowhere", method: .get) {
                #expect($0.status == .notFound)
                #expect(Self.decoded(ErrorBody.self, $0)?.error.code == "not_found")
            }
            #expect(await Self.refusal { try await api.call(Endpoints.Sessions.list) }?.status == 401)
            #expect(await Self.refusal { try await api.authenticated("flr_forged").call(Endpoints.Sessions.list) }?.status == 401)
        }
    }

    @Test func sshKeysAddListDelete() async throws {
        try await Harness().run { _, api in
            let user = try await Self.register(api, "a@b.co")
            let pair = OpenSSHKeyPair.generateEd25519(comment: "laptop")
            let added = try await user.call(Endpoints.SSHKeys.add, SSHKeyCreateRequest(name: nil, publicKey: pair.publicKeyLine))
            #expect(added.name == "laptop")
            #expect(added.fingerprint == SSHPublicKey(line: pair.publicKeyLine)?.fingerprint)
            let again = await Self.refusal {
                try await user.call(Endpoints.SSHKeys.add, SSHKeyCreateRequest(name: nil, publicKey: pair.publicKeyLine))
            }
            #expect(again?.status == 409)
            let garbage = await Self.refusal {
                try await user.call(Endpoints.SSHKeys.add, SSHKeyCreateRequest(name: nil, publicKey: "ssh-ed25519 garbage"))
            }
            #expect(garbage?.status == 400)
            #expect(try await user.all(Endpoints.SSHKeys.list).map(\.id) == [added.id])
            let other = try await Self.register(api, "c@d.co")
            #expect(await Self.refusal { try await other.call(Endpoints.SSHKeys.delete.at(added.id)) }?.status == 404)
            try await user.call(Endpoints.SSHKeys.delete.at(added.id))
            #expect(try await user.all(Endpoints.SSHKeys.list).isEmpty)
        }
    }

    @Test func templatesAndSessionsByNameOrId() async throws {
        try await Harness().run { _, api in
            let (user, session) = try await Self.userWithSession(api, "a@b.co")
            #expect(session.state == .created)
            #expect(session.templateVersion == "1")
            #expect(session.hostPublicKey.hasPrefix("ssh-ed25519 "))
            for reference in ["dev", session.id] {
                #expect(try await user.call(Endpoints.Sessions.get.at(reference)).id == session.id)
            }
            #expect(try await user.all(Endpoints.Sessions.events.at("dev")).map(\.toState) == [.created])
            let taken = await Self.refusal {
                try await user.call(Endpoints.Sessions.create, SessionCreateRequest(name: "dev", template: "base"))
            }
            #expect(taken?.status == 409)
            let relative = await Self.refusal {
                try await user.call(Endpoints.Templates.createVersion.at("base"), .object([
                    "version": .string("2"),
                    "manifest": .object(["image": .string("x"), "persistedPaths": .array([.string("home")])]),
                ]))
            }
            #expect(relative?.status == 400)
            #expect(relative?.description == "manifest.persistedPaths[0] must be an absolute path")
            try await user.call(Endpoints.Templates.create, TemplateCreateRequest(name: "empty"))
            let unpromoted = await Self.refusal {
                try await user.call(Endpoints.Sessions.create, SessionCreateRequest(name: "x", template: "empty"))
            }
            #expect(unpromoted?.status == 409 && unpromoted?.code == "template_not_promoted")
            try await user.call(Endpoints.Sessions.delete.at("dev"))
            #expect(await Self.refusal { try await user.call(Endpoints.Sessions.get.at("dev")) }?.status == 404)
        }
    }

    @Test func anotherUsersSessionIsNotFound() async throws {
        try await Harness().run { _, api in
            let (_, session) = try await Self.userWithSession(api, "a@b.co")
            let intruder = try await Self.register(api, "evil@b.co")
            let calls: [(String, @Sendable () async throws -> Void)] = [
                ("get", { try await intruder.call(Endpoints.Sessions.get.at(session.id)) }),
                ("start", { try await intruder.call(Endpoints.Sessions.start.at(session.id)) }),
                ("events", { try await intruder.call(Endpoints.Sessions.events.at(session.id)) }),
                ("delete", { try await intruder.call(Endpoints.Sessions.delete.at(session.id)) }),
                ("runtime token", {
                    try await intruder.call(Endpoints.Sessions.runtimeToken.at(session.id), RuntimeTokenRequest(purpose: .ssh))
                }),
            ]
            for (name, call) in calls {
                #expect(await Self.refusal(call)?.status == 404, "\(name)")
            }
        }
    }

    @Test func gatewayChecksTokensBeforeUpgrading() async throws {
        let harness = try Harness()
        let signingKey = try Curve25519.Signing.PrivateKey(rawRepresentation: Data(contentsOf:
            harness.directory.url.appendingPathComponent("data/runtime-token-ed25519.key")))
        try await harness.run { _, api in
            let (user, session) = try await Self.userWithSession(api, "a@b.co")
            let issued = try await user.call(Endpoints.Sessions.runtimeToken.at("dev"), RuntimeTokenRequest(purpose: .ssh))
            #expect(issued.expiresAt.timeIntervalSinceNow <= 300 && issued.expiresAt.timeIntervalSinceNow > 280)
            // An upgrade request as a WebSocket client sends it (curl: a refusal closes the
            // connection, so each attempt has its own).
            func attempt(_ token: String?, session id: String = session.id) async throws -> (HTTPResponse.Status, String) {
                var headers = ["Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="]
                if let token { headers["Authorization"] = "Bearer \(token)" }
                let response = try await Curl.request(api.baseURL + Endpoints.Gateway.ssh.at(id).path, headers: headers)
                let code = (try? FlareJSON.decoder().decode(ErrorBody.self, from: Data(response.body.utf8)))?.error.code
                return (HTTPResponse.Status(code: response.status), code ?? "")
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
            let terminal = try await user.call(Endpoints.Sessions.runtimeToken.at("dev"), RuntimeTokenRequest(purpose: .terminal))
            #expect(try await attempt(terminal.token) == (.forbidden, "token_wrong_purpose"))
            // A genuine token for a session deleted since: revoked with it, no upgrade.
            try await user.call(Endpoints.Sessions.delete.at("dev"))
            #expect(try await attempt(issued.token) == (.unauthorized, "token_revoked"))
        }
    }

    @Test func gatewayRoutesNeedTheGatewayTokenAndAnswerWithTheSessionsEndpoint() async throws {
        let harness = try Harness()
        let gatewayToken = try String(contentsOf: harness.directory.url.appendingPathComponent("data/gateway-token"),
                                      encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try await harness.run { _, api in
            let (user, _) = try await Self.userWithSession(api, "a@b.co")
            let gateway = api.authenticated(gatewayToken)
            let runtime = try await user.call(Endpoints.Sessions.runtimeToken.at("dev"), RuntimeTokenRequest(purpose: .ssh)).token
            // Without the gateway token, or with a user's access token: refused.
            for client in [api, user] {
                let refused = await Self.refusal {
                    try await client.call(Endpoints.GatewayLink.resolve, GatewayResolveRequest(token: runtime))
                }
                #expect(refused?.status == 401 && refused?.code == "invalid_gateway_token")
            }
            let notAKey = await Self.refusal {
                try await gateway.call(Endpoints.GatewayLink.register, GatewayRegisterRequest(serviceKey: "not a key", name: "gw"))
            }
            #expect(notAKey?.status == 400)
            let registered = try await gateway.call(Endpoints.GatewayLink.register, GatewayRegisterRequest(
                serviceKey: OpenSSHKeyPair.generateEd25519(comment: "gw").publicKeyLine, name: "gw"))
            #expect(Data(base64Encoded: registered.runtimeTokenPublicKey)?.count == 32)
            #expect(try await gateway.call(Endpoints.GatewayLink.keys).map(\.name).contains("gw"))
            // A forged token is refused; the session is not started (it is `created`).
            let forged = await Self.refusal {
                try await gateway.call(Endpoints.GatewayLink.resolve, GatewayResolveRequest(token: "frt1.e30.AAAA"))
            }
            #expect(forged?.status == 401)
            #expect(try await user.call(Endpoints.Sessions.get.at("dev")).state == .created)
            // Check: a token of a deleted session has lost access; an unknown id too.
            try await user.call(Endpoints.Sessions.delete.at("dev"))
            let claims = try #require(runtime.split(separator: ".").dropFirst().first.flatMap { Base64URL.decode(String($0)) })
            let object = try #require(try JSONSerialization.jsonObject(with: claims) as? [String: Any])
            let tokenId = try #require(object["jti"] as? String)
            let check = try await gateway.call(Endpoints.GatewayLink.check, GatewayCheckRequest(tokenIds: [tokenId, "rt_unknown"]))
            #expect(check.revokedTokenIds.sorted() == [tokenId, "rt_unknown"].sorted())
        }
    }

    @Test func logoutEverywhereRevokesEveryTokenOfTheUser() async throws {
        let harness = try Harness()
        try await harness.run { _, api in
            let (first, _) = try await Self.userWithSession(api, "a@b.co")
            let login = try await api.call(Endpoints.Auth.login, Credentials(email: "a@b.co", password: "correct horse"))
            let second = api.authenticated(login.accessToken)
            for purpose in [RuntimeTokenPurpose.ssh, .terminal] {
                try await first.call(Endpoints.Sessions.runtimeToken.at("dev"), RuntimeTokenRequest(purpose: purpose))
            }
            #expect(try await second.call(Endpoints.Auth.logoutAll).revokedTokens == 2)
            for client in [first, second] {
                #expect(await Self.refusal { try await client.call(Endpoints.Auth.me) }?.status == 401)
            }
        }
    }

    /// Lists come in pages: `limit` items at most, the next page named by a `Link` header until
    /// the last; a cursor that is not an item of the caller's list, or a limit out of range, is a 400.
    @Test func sessionAndTemplateListsArePagedByCursor() async throws {
        try await Harness().run { _, api in
            let (user, first) = try await Self.userWithSession(api, "pager@example.com")
            for name in ["b", "c", "d", "e"] {
                try await user.call(Endpoints.Sessions.create, SessionCreateRequest(name: name, template: "base"))
            }
            var page = try await user.page(Endpoints.Sessions.list, limit: 2)
            var names = page.items.map(\.name)
            var pages = 1
            while let next = page.next, pages < 10 {
                page = try await user.page(next)
                #expect(page.items.count <= 2)
                names += page.items.map(\.name)
                pages += 1
            }
            #expect(names == ["dev", "b", "c", "d", "e"], "oldest first, each once")
            #expect(pages == 3)
            // Without a limit: the first 100, no next page here.
            let unlimited = try await user.page(Endpoints.Sessions.list)
            #expect(unlimited.items.count == 5 && unlimited.next == nil)
            for bad in [Endpoints.Sessions.list.query(["limit": "0"]), Endpoints.Sessions.list.query(["limit": "1001"]),
                        Endpoints.Sessions.list.query(["limit": "x"]), Endpoints.Sessions.list.query(["cursor": "ses_nope"])] {
                #expect(await Self.refusal { try await user.call(bad) }?.status == 400, "\(bad.path)")
            }
            #expect(await Self.refusal {
                try await user.call(Endpoints.Templates.list.query(["cursor": "tpl_nope"]))
            }?.status == 400)
            // Another account's session is not a cursor of this list.
            let other = try await Self.register(api, "other-pager@example.com")
            let foreign = await Self.refusal { try await other.call(Endpoints.Sessions.list.query(["cursor": first.id])) }
            #expect(foreign?.status == 400 && foreign?.code == "invalid_cursor")
            let templates = try await user.page(Endpoints.Templates.list, limit: 1)
            #expect(templates.items.map(\.name) == ["base"] && templates.items.first?.versions.count == 1)
            #expect(templates.next == nil)
        }
    }

    /// The list is written straight from the database rows; each of its items must be byte for
    /// byte what the session's own route answers, whatever the state, reason text, activity and dates.
    @Test func listedSessionsAreWhatTheirOwnRouteShows() async throws {
        let harness = try Harness()
        let store = harness.server.store
        try await harness.run { raw, api in
            let (user, _) = try await Self.userWithSession(api, "lister@example.com")
            for index in 0..<12 {
                try await user.call(Endpoints.Sessions.create, SessionCreateRequest(name: "s\(index)", template: "base"))
            }
            let created = try await user.call(Endpoints.Sessions.list)
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
            // The exact bytes of each answer, so through the raw client.
            let owner = Self.bearer(try #require(user.token))
            let listed = try await raw.execute(uri: Endpoints.Sessions.list.path, method: .get, headers: owner) {
                #expect($0.status == .ok)
                #expect($0.headers[.contentType] == "application/json; charset=utf-8")
                return String(buffer: $0.body)
            }
            var singles: [String] = []
            for session in created {
                singles.append(try await raw.execute(uri: Endpoints.Sessions.get.at(session.id).path, method: .get,
                                                     headers: owner) { String(buffer: $0.body) })
            }
            #expect(listed == "[" + singles.joined(separator: ",") + "]")
            let decoded = try FlareJSON.decoder().decode([SessionInfo].self, from: Data(listed.utf8))
            #expect(decoded.count == 13)
            #expect(decoded.filter { $0.activity != nil }.allSatisfy { $0.state == .running })
            #expect(decoded.contains { $0.activity?.bytesIn == 2 << 40 })
        }
    }

    /// Every page of a list, following its `Link` headers from a first page of `limit`.
    static func allPages<Target: EndpointTarget, Item: Decodable & Sendable>(_ client: FlareClient, _ target: Target,
                                                                             limit: Int) async throws -> [[Item]]
        where Target.Body == NoBody, Target.Response == [Item]
    {
        var page = try await client.page(target, limit: limit)
        var pages = [page.items]
        while let next = page.next, pages.count < 20 {
            page = try await client.page(next)
            pages.append(page.items)
        }
        return pages
    }

    /// A session's events and an account's SSH keys are paged the same way, and a cursor from
    /// another session or account is refused.
    @Test func eventsAndKeysArePagedByCursor() async throws {
        let harness = try Harness()
        let store = harness.server.store
        try await harness.run { _, api in
            let (user, session) = try await Self.userWithSession(api, "events@example.com")
            for command: SessionStateMachine.Command in [.start, .agentReady, .stop, .stopped] {
                _ = try await store.transition(sessionId: session.id, command, reason: "\(command)")
            }
            let pages = try await Self.allPages(user, Endpoints.Sessions.events.at("dev"), limit: 2)
            #expect(pages.map(\.count) == [2, 2, 1])
            #expect(pages.flatMap { $0 }.map(\.toState) == [.created, .starting, .running, .stopping, .sleeping])
            for _ in 0..<3 {
                try await user.call(Endpoints.SSHKeys.add, SSHKeyCreateRequest(
                    name: nil, publicKey: OpenSSHKeyPair.generateEd25519(comment: "k").publicKeyLine))
            }
            let keys = try await Self.allPages(user, Endpoints.SSHKeys.list, limit: 2)
            #expect(keys.map(\.count) == [2, 1])
            #expect(Set(keys.flatMap { $0 }.map(\.id)).count == 3)

            let (other, _) = try await Self.userWithSession(api, "events-other@example.com")
            let firstEvent = pages[0][0].id
            let refused: [(String, @Sendable () async throws -> Void)] = [
                ("another session's event", {
                    try await other.call(Endpoints.Sessions.events.at("dev").query(["cursor": String(firstEvent)]))
                }),
                ("no such event", { try await user.call(Endpoints.Sessions.events.at("dev").query(["cursor": "abc"])) }),
                ("another account's key", { try await other.call(Endpoints.SSHKeys.list.query(["cursor": keys[0][0].id])) }),
            ]
            for (name, call) in refused {
                let error = await Self.refusal(call)
                #expect(error?.status == 400 && error?.code == "invalid_cursor", "\(name)")
            }
        }
    }

    /// The sign-in lookup is one statement that checks expiry and revocation itself: a token past
    /// its expiry, or revoked, is refused on every route, while a live one next to them works.
    @Test func expiredAndRevokedAccessTokensAreRefused() async throws {
        let harness = try Harness()
        let store = harness.server.store
        try await harness.run { _, api in
            _ = try await Self.register(api, "tokens@example.com")
            let user = try #require(try await store.user(email: "tokens@example.com"))
            let now = Date()
            for (secret, expires, revoked) in [("live-secret", now.addingTimeInterval(600), nil as Date?),
                                               ("expired-secret", now.addingTimeInterval(-1), nil),
                                               ("revoked-secret", now.addingTimeInterval(600), now)] {
                try await store.insertAccessToken(AccessTokenRecord(
                    tokenHash: SessionLifecycle.hash(secret), userId: user.id, createdAt: now.addingTimeInterval(-60),
                    expiresAt: expires, revokedAt: revoked))
            }
            let live = api.authenticated("live-secret")
            #expect(try await live.call(Endpoints.Auth.me).email == "tokens@example.com")
            #expect(try await live.call(Endpoints.Sessions.list).isEmpty)
            for secret in ["expired-secret", "revoked-secret", "never-issued"] {
                let client = api.authenticated(secret)
                let calls: [(String, @Sendable () async throws -> Void)] = [
                    ("me", { try await client.call(Endpoints.Auth.me) }),
                    ("sessions", { try await client.call(Endpoints.Sessions.list) }),
                ]
                for (name, call) in calls {
                    let error = await Self.refusal(call)
                    #expect(error?.status == 401 && error?.code == "invalid_token", "\(secret) on \(name)")
                }
            }
        }
    }
}

import FlareContracts
import Foundation
import Testing

/// Workspaces from the CLI, and from a second account trying another's workspace by name and id.
@Suite(.timeLimit(.minutes(5)))
struct WorkspaceTests {
    func workspaces(_ fixture: ServerFixture) async throws -> [WorkspaceInfo] {
        let listed = try await fixture.flare(["workspace", "list", "--json"])
        #expect(listed.status == 0, "\(listed.stderr)")
        return try FlareJSON.decoder().decode([WorkspaceInfo].self, from: Data(listed.stdout.utf8))
    }

    @Test func signUpMakesAPersonalWorkspaceAndMoreCanBeMadeRenamedAndDeleted() async throws {
        let fixture = try await ServerFixture()
        let registered = try await fixture.flare(["auth", "register", "--email", "dev@example.com", "--password-stdin"],
                                                 stdin: "a long password\n")
        #expect(registered.status == 0, "\(registered.stderr)")
        let personal = try await workspaces(fixture)
        #expect(personal.map(\.name) == ["dev"] && personal.map(\.role) == ["owner"] && personal.map(\.personal) == [true])

        let created = try await fixture.flare(["workspace", "create", "platform-team"])
        #expect(created.status == 0 && created.stdout.contains("Created workspace platform-team"), "\(created.stderr)")
        #expect(try await fixture.flare(["workspace", "create", "platform-team"]).stderr.contains("exists"))
        let bad = try await fixture.flare(["workspace", "create", "Bad Name"])
        #expect(bad.status != 0 && bad.stderr.contains("lowercase"), "\(bad.stderr)")
        let renamed = try await fixture.flare(["workspace", "rename", "platform-team", "platform"])
        #expect(renamed.status == 0, "\(renamed.stderr)")
        #expect(try await workspaces(fixture).map(\.name) == ["dev", "platform"])
        let members = try await fixture.flare(["workspace", "members", "platform"])
        #expect(members.stdout.contains("dev@example.com") && members.stdout.contains("owner"), "\(members.stdout)")
        let table = try await fixture.flare(["workspace", "list"])
        #expect(table.stdout.contains("dev (personal)"), "\(table.stdout)")

        let keepPersonal = try await fixture.flare(["workspace", "delete", "dev"])
        #expect(keepPersonal.status != 0 && keepPersonal.stderr.contains("personal"), "\(keepPersonal.stderr)")
        #expect(try await fixture.flare(["workspace", "delete", "platform"]).status == 0)
        #expect(try await workspaces(fixture).map(\.name) == ["dev"])
    }

    @Test func anotherAccountsWorkspaceIsNotFoundByNameOrId() async throws {
        let fixture = try await ServerFixture()
        _ = try await fixture.flare(["auth", "register", "--email", "dev@example.com", "--password-stdin"],
                                    stdin: "a long password\n")
        _ = try await fixture.flare(["workspace", "create", "secret-project"])
        let target = try #require(try await workspaces(fixture).first { $0.name == "secret-project" })
        let other = try await Curl.register(fixture.url, email: "other@example.com")
        let auth = ["Authorization": "Bearer \(other)"]
        let missing = try await Curl.request(fixture.url + Endpoints.Workspaces.get.at("no-such-place").path, headers: auth)
        #expect(missing.status == 404)
        #expect(try FlareJSON.decoder().decode(ErrorBody.self, from: Data(missing.body.utf8)).error.message
            == "workspace no-such-place not found", "\(missing.body)")
        for reference in [target.name, target.id] {
            let attempts = [
                ("GET", Endpoints.Workspaces.get.at(reference).path, nil),
                ("GET", Endpoints.Workspaces.members.at(reference).path, nil),
                ("PATCH", Endpoints.Workspaces.rename.at(reference).path, #"{"name":"taken-over"}"#),
                ("DELETE", Endpoints.Workspaces.delete.at(reference).path, nil),
            ]
            for (method, path, body) in attempts {
                let response = try await Curl.request(fixture.url + path, method: method, headers: auth, body: body)
                #expect(response.status == 404, "\(method) \(path): \(response.status) \(response.body)")
                // The same answer as for a workspace that does not exist: nothing to probe.
                let error = try FlareJSON.decoder().decode(ErrorBody.self, from: Data(response.body.utf8)).error
                #expect(error.code == "not_found" && error.message == "workspace \(reference) not found", "\(response.body)")
            }
        }
        // The other account sees only its own; the first's is untouched.
        let theirs = try await Curl.request(fixture.url + Endpoints.Workspaces.list.path, headers: auth)
        #expect(theirs.body.contains("\"other\"") && !theirs.body.contains("secret-project"), "\(theirs.body)")
        #expect(try await workspaces(fixture).map(\.name) == ["dev", "secret-project"])
        // A malformed body changes nothing either.
        let malformed = try await Curl.request(fixture.url + Endpoints.Workspaces.create.path, method: "POST",
                                               headers: auth, body: #"{"name": 7}"#)
        #expect(malformed.status == 400, "\(malformed.body)")
    }
}

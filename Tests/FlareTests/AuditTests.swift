import FlareContracts
import Foundation
import Testing

/// The audit log as an admin reads it, and as another account tries to.
@Suite(.timeLimit(.minutes(5)))
struct AuditTests {
    func audit(_ fixture: ServerFixture, _ arguments: [String] = []) async throws -> [AuditEntry] {
        let result = try await fixture.flare(["audit", "--json"] + arguments)
        #expect(result.status == 0, "\(result.stderr)")
        return try FlareJSON.decoder().decode([AuditEntry].self, from: Data(result.stdout.utf8))
    }

    @Test func everyChangeIsRecordedWithItsActorOutcomeRequestAndAddress() async throws {
        let fixture = try await ServerFixture()
        try await fixture.signUpWithTemplate()
        let token = try fixture.client().token!
        // A refused change, as a client sees it: its request id is in the error.
        let refused = try await Curl.request(fixture.url + Endpoints.Templates.promote.at("base").path, method: "POST",
                                             headers: ["Authorization": "Bearer \(token)"], body: #"{"version":"9"}"#)
        #expect(refused.status == 404)
        let requestId = try FlareJSON.decoder().decode(ErrorBody.self, from: Data(refused.body.utf8)).error.requestId

        let lines = try await audit(fixture)
        let actions = lines.map(\.action)
        for action in ["user.register", "template.create", "template.version.create", "template.promote", "request.refused"] {
            #expect(actions.contains(action), "\(action) in \(actions)")
        }
        #expect(lines.map(\.id) == lines.map(\.id).sorted(by: >), "newest first")
        let promote = try #require(lines.first { $0.action == "template.promote" })
        #expect(promote.actor == "dev@example.com" && promote.outcome == "success" && promote.address == "127.0.0.1")
        #expect(promote.requestId?.isEmpty == false)
        let refusal = try #require(lines.first { $0.action == "request.refused" })
        #expect(refusal.requestId == requestId && refusal.outcome == "refused", "\(refusal)")
        #expect(refusal.target == "POST /api/templates/base/promote" && refusal.detail.hasPrefix("404"), "\(refusal)")

        // Filters.
        #expect(try await audit(fixture, ["--action", "template."]).allSatisfy { $0.action.hasPrefix("template.") })
        #expect(try await audit(fixture, ["--action", "template."]).count == 3)
        #expect(try await audit(fixture, ["--since", "1h"]).count == lines.count)
        #expect(try await audit(fixture, ["--since", "2099-01-01T00:00:00Z"]).isEmpty)
        #expect(try await audit(fixture, ["--actor", "someone@else.org"]).isEmpty)
        #expect(try await audit(fixture, ["--limit", "2"]).map(\.id) == Array(lines.prefix(2).map(\.id)))
        let table = try await fixture.flare(["audit"])
        #expect(table.stdout.contains("template.promote") && table.stdout.contains("REQUEST"), "\(table.stdout)")
        let bad = try await fixture.flare(["audit", "--since", "yesterday"])
        #expect(bad.status != 0 && bad.stderr.contains("--since"), "\(bad.stderr)")

        // Another account cannot read it, by name or id, and its own log holds only its own lines.
        let other = try await Curl.register(fixture.url, email: "other@example.com")
        let workspace = try #require(lines.first?.workspaceId)
        for reference in ["dev", workspace] {
            let probe = try await Curl.request(fixture.url + Endpoints.Workspaces.audit.at(reference).path,
                                               headers: ["Authorization": "Bearer \(other)"])
            #expect(probe.status == 404, "\(probe.body)")
        }
        let theirs = try await Curl.request(fixture.url + Endpoints.Workspaces.audit.at("other").path,
                                            headers: ["Authorization": "Bearer \(other)"])
        let theirLines = try FlareJSON.decoder().decode([AuditEntry].self, from: Data(theirs.body.utf8))
        #expect(theirLines.allSatisfy { $0.actor == "other@example.com" } && !theirLines.isEmpty, "\(theirs.body)")
        let badSince = try await Curl.request(fixture.url + Endpoints.Workspaces.audit.at("other").path + "?since=soon",
                                              headers: ["Authorization": "Bearer \(other)"])
        #expect(badSince.status == 400, "\(badSince.body)")
    }
}

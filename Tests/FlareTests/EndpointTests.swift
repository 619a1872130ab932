import FlareClient
import FlareContracts
import Testing

/// The API contract's addresses: what a client puts on the wire for an endpoint and its values.
@Suite struct EndpointTests {
    @Test func valuesFillTheirParametersAsOneSegmentEach() async {
        #expect(Endpoints.Sessions.get.at("dev").path == "/api/sessions/dev")
        #expect(Endpoints.Snapshots.restore.at("ses_1", "snp_2").path == "/api/sessions/ses_1/snapshots/snp_2/restore")
        #expect(Endpoints.Snapshots.restore.at("ses_1", "snp_2").method == .post)
        // A value cannot reach another route: separators and dot segments are escaped.
        #expect(Endpoints.Sessions.get.at("../auth/me").path == "/api/sessions/..%2Fauth%2Fme")
        #expect(Endpoints.Sessions.get.at("..").path == "/api/sessions/%2E%2E")
        #expect(Endpoints.Sessions.get.at(".").path == "/api/sessions/%2E")
        #expect(Endpoints.Sessions.get.at("a?b#c;d").path == "/api/sessions/a%3Fb%23c%3Bd")
        #expect(Endpoints.Templates.get.at("naïve space").path == "/api/templates/na%C3%AFve%20space")
    }

    @Test func parametersAreNamedFromTheTemplate() async {
        #expect(Endpoints.Templates.buildLog.parameterNames == ["template", "version"])
        #expect(Endpoints.Sessions.list.parameterNames.isEmpty)
        #expect(Endpoints.Agent.commandResult.parameterNames == ["id"])
    }

    @Test func queriesAreEscapedAndAppended() async {
        let logs = Endpoints.Sessions.logs.at("dev").query(["lines": "50"])
        #expect(logs.path == "/api/sessions/dev/logs?lines=50")
        #expect(logs.query(["follow": "true"]).path == "/api/sessions/dev/logs?lines=50&follow=true")
        #expect(Endpoints.Sessions.list.query(["cursor": "a&b=c d+e"]).path == "/api/sessions?cursor=a%26b%3Dc%20d%2Be")
        #expect(Endpoints.Sessions.list.query([(String, String)]()).path == "/api/sessions")
    }

    /// A `Link` header is followed only to the same list: a hostile or confused server cannot
    /// send the client's token to another route.
    @Test func aNextPageIsOnlyEverTheSameList() async {
        let list = Endpoints.Sessions.list
        #expect(list.nextPage("/api/sessions?limit=2&cursor=ses_b")?.path == "/api/sessions?limit=2&cursor=ses_b")
        #expect(list.nextPage("/api/auth/logout-all?x=1") == nil)
        #expect(list.nextPage("http://elsewhere.example/api/sessions") == nil)
        #expect(Endpoints.Sessions.events.at("dev").nextPage("/api/sessions/other/events?cursor=1") == nil)
        #expect(FlareClient.nextLink(#"</api/sessions?limit=2&cursor=x>; rel="next""#) == "/api/sessions?limit=2&cursor=x")
        #expect(FlareClient.nextLink(#"</api/sessions?cursor=x>; rel="prev""#) == nil)
    }
}

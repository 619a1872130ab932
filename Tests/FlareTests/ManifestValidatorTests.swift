@testable import ControlPlane
import FlareContracts
import Foundation
import Testing

@Suite struct ManifestValidatorTests {
    func validate(_ json: String) throws -> TemplateVersionCreateRequest {
        try ManifestValidator.validate(try JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)))
    }

    func message(_ json: String) -> String? {
        do {
            _ = try validate(json)
            return nil
        } catch let error as ServiceError {
            #expect(error.kind == .invalid)
            return error.message
        } catch {
            return "\(error)"
        }
    }

    @Test func completeManifestIsAccepted() async throws {
        let request = try validate("""
            {"version":"1.2.0","manifest":{"image":"debian:bookworm","persistedPaths":["/home/flare","/srv/data"],
             "idleTimeoutSeconds":600,"sleepTtlSeconds":3600,"env":{"EDITOR":"vim"}}}
            """)
        #expect(request.manifest.persistedPaths == ["/home/flare", "/srv/data"])
        #expect(request.manifest.idleTimeoutSeconds == 600)
        #expect(request.manifest.env == ["EDITOR": "vim"])
    }

    @Test func buildFieldsAreAcceptedAndChecked() async throws {
        let request = try validate("""
            {"version":"2","manifest":{"image":"burstflare/session-base","packages":["jq","python3.11","g++"],
             "setup":"echo hi > /etc/motd","resources":{"memoryMB":2048,"cpus":1.5,"pids":512}}}
            """)
        #expect(request.manifest.packages == ["jq", "python3.11", "g++"])
        #expect(request.manifest.setup == "echo hi > /etc/motd")
        #expect(request.manifest.resources == TemplateResources(memoryMB: 2048, cpus: 1.5, pids: 512))
        func manifest(_ fields: String) -> String? { message(#"{"version":"1","manifest":{"image":"x",\#(fields)}}"#) }
        #expect(manifest(#""packages":["jq; rm -rf /"]"#) == #"manifest.packages[0] must be a Debian package name like "jq""#)
        #expect(manifest(#""packages":"jq""#) == "manifest.packages must be an array")
        #expect(manifest(#""setup":42"#) == "manifest.setup must be a shell script of at most 64 KiB")
        #expect(manifest(#""resources":{"memoryMB":1}"#) == "manifest.resources.memoryMB must be a whole number from 64 to 262144")
        #expect(manifest(#""resources":{"cpus":"two"}"#) == "manifest.resources.cpus must be a number")
        #expect(manifest(#""resources":{"disk":1}"#) == "manifest.resources.disk is not a known field (known: cpus, memoryMB, pids)")
    }

    @Test func defaultsApply() async throws {
        let request = try validate(#"{"version":"1","manifest":{"image":"x"}}"#)
        #expect(request.manifest.persistedPaths.isEmpty)
        #expect(request.manifest.idleTimeoutSeconds == 1800)
    }

    @Test func eachBadFieldIsNamed() async {
        #expect(message(#"{"version":"1","manifest":{}}"#) == "manifest.image is required")
        #expect(message(#"{"manifest":{"image":"x"}}"#) == "version is required")
        #expect(message(#"{"version":"1","manifest":{"image":"x","persistedPaths":["relative"]}}"#)
            == "manifest.persistedPaths[0] must be an absolute path")
        #expect(message(#"{"version":"1","manifest":{"image":"x","persistedPaths":["/a","/b/../c"]}}"#)?
            .hasPrefix("manifest.persistedPaths[1] must be a normalized path") == true)
        let nine = (1...9).map { "\"/p\($0)\"" }.joined(separator: ",")
        #expect(message(#"{"version":"1","manifest":{"image":"x","persistedPaths":[\#(nine)]}}"#)
            == "manifest.persistedPaths has 9 entries; at most 8 allowed")
        #expect(message(#"{"version":"1","manifest":{"image":"x","idleTimeoutSeconds":"10"}}"#)
            == "manifest.idleTimeoutSeconds must be a whole number")
        #expect(message(#"{"version":"1","manifest":{"image":"x","sleepTtlSeconds":true}}"#)
            == "manifest.sleepTtlSeconds must be a whole number")
        #expect(message(#"{"version":"1","manifest":{"image":"x","env":{"HOME":"/x"}}}"#)
            == "manifest.env.HOME is set by the session itself")
        #expect(message(#"{"version":"1","manifest":{"image":"x","env":{"1X":"y"}}}"#)
            == "manifest.env.1X is not a valid variable name")
        #expect(message(#"{"version":"1","manifest":{"image":"x","imagee":"y"}}"#)?
            .hasPrefix("manifest.imagee is not a known field") == true)
        #expect(message(#"{"version":"../x","manifest":{"image":"x"}}"#)?.hasPrefix("version must be") == true)
    }

    /// What a hostile template would ask for: the agent's own state, the system's directories (or
    /// a parent of them) as persisted paths; files placed through one another; an image name that
    /// is not one.
    @Test func manifestsReachingForTheSystemOrTheAgentAreRefused() async {
        for path in ["/var/lib/flare-agent", "/var/lib", "/var", "/etc", "/etc/ssh", "/usr/local", "/opt",
                     "/opt/flare-run/x", "/proc/1", "/run"] {
            #expect(message(#"{"version":"1","manifest":{"image":"x","persistedPaths":["\#(path)"]}}"#)?
                .hasPrefix("manifest.persistedPaths[0] cannot be") == true, "\(path)")
        }
        for path in ["/home/flare", "/srv/data", "/opt/tool", "/var/lib/postgresql", "/root"] {
            #expect(message(#"{"version":"1","manifest":{"image":"x","persistedPaths":["\#(path)"]}}"#) == nil,
                    "\(path) is the user's to persist")
        }
        #expect(message(#"{"version":"1","manifest":{"image":"x","files":[{"from":"l","to":"/x"},{"from":"f","to":"/x/pwn"}]}}"#)
            == "manifest.files[1].to overlaps manifest.files[0].to (/x)")
        #expect(message(#"{"version":"1","manifest":{"image":"x","files":[{"from":"a","to":"/x"},{"from":"a/b","to":"/y"}]}}"#)
            == "manifest.files[1].from overlaps manifest.files[0].from (a)")
        #expect(message(#"{"version":"1","manifest":{"image":"x","files":[{"from":"a","to":"/"}]}}"#)?
            .hasPrefix("manifest.files[0].to must be") == true)
        for image in ["x?y", "debian#1", "Debian", "../x", "a//b", "x:"] {
            #expect(message(#"{"version":"1","manifest":{"image":"\#(image)"}}"#)?
                .hasPrefix("manifest.image must be an image reference") == true, "\(image)")
        }
        for image in ["debian", "debian:bookworm", "burstflare/session-base", "localhost:5000/team/img:v1.2",
                      "burstflare/template-tpl_ab12:1"] {
            #expect(message(#"{"version":"1","manifest":{"image":"\#(image)"}}"#) == nil, "\(image)")
        }
    }
}

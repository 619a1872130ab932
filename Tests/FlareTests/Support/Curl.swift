import FlareContracts
import Foundation

/// One HTTP exchange through `curl`, as an outsider would make it: status, headers and body.
struct CurlResponse {
    var status: Int
    var headers: [String: String]
    var body: String
}

enum Curl {
    /// `curl -sS -i ARGS… URL`; `unixSocket` talks to a Unix socket instead of TCP.
    static func request(_ url: String, method: String = "GET", headers: [String: String] = [:], body: String? = nil,
                        unixSocket: String? = nil, timeout: Int = 20) async throws -> CurlResponse {
        var arguments = ["curl", "-sS", "-i", "--max-time", "\(timeout)", "-X", method]
        if let unixSocket { arguments += ["--unix-socket", unixSocket] }
        for (name, value) in headers { arguments += ["-H", "\(name): \(value)"] }
        if let body { arguments += ["-H", "Content-Type: application/json", "--data-binary", body] }
        let result = try await TestProcess.run(arguments + [url], timeout: TimeInterval(timeout + 10))
        // A 100 Continue or similar interim head comes first; the last head is the answer.
        let blocks = result.stdout.components(separatedBy: "\r\n\r\n")
        guard let headIndex = blocks.lastIndex(where: { $0.hasPrefix("HTTP/") }) else {
            throw FixtureError("curl \(url) got no response: \(result.stderr)")
        }
        let head = blocks[headIndex].split(separator: "\r\n").map(String.init)
        let status = Int(head.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
        var fields: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return CurlResponse(status: status, headers: fields,
                            body: blocks[(headIndex + 1)...].joined(separator: "\r\n\r\n"))
    }

    /// Registers an account straight through the API; its access token.
    static func register(_ base: String, email: String) async throws -> String {
        let response = try await request(base + Endpoints.Auth.register.path, method: "POST",
                                   body: #"{"email":"\#(email)","password":"a long password"}"#)
        guard response.status == 201, let data = response.body.data(using: .utf8),
              let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let token = object["accessToken"] as? String
        else { throw FixtureError("register \(email): \(response.status) \(response.body)") }
        return token
    }
}

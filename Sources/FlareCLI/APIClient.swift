import AsyncHTTPClient
import FlareContracts
import Foundation
import NIOCore
import NIOHTTP1
import NIOFoundationCompat

/// Talks to the control plane's JSON API and turns its errors into sentences.
struct APIClient {
    let baseURL: String
    let token: String?

    /// An error the server sent, with its status.
    struct ServerError: Error, CustomStringConvertible {
        let status: Int
        let code: String
        let message: String
        var description: String { message }
    }

    func get<T: Decodable>(_ path: String, as type: T.Type = T.self) async throws -> T {
        try decode(try await send("GET", path, body: nil))
    }

    /// Every item of a paged list, following its `Link: <…>; rel="next"` headers page by page.
    func getAll<T: Decodable>(_ path: String, as type: T.Type = T.self) async throws -> [T] {
        var items: [T] = []
        var next: String? = path + (path.contains("?") ? "&" : "?") + "limit=1000"
        while let page = next {
            let (data, headers) = try await exchange("GET", page, body: nil)
            items += try decode(data) as [T]
            next = headers["Link"].lazy.compactMap(Self.nextLink).first
        }
        return items
    }

    /// The target of a `Link` header's `rel="next"`: `</api/sessions?cursor=x>; rel="next"`.
    static func nextLink(_ header: String) -> String? {
        for link in header.split(separator: ",") where link.contains(#"rel="next""#) {
            guard let start = link.firstIndex(of: "<"), let end = link.firstIndex(of: ">"), start < end else { continue }
            return String(link[link.index(after: start)..<end])
        }
        return nil
    }

    func post<T: Decodable>(_ path: String, _ body: some Encodable, as type: T.Type = T.self) async throws -> T {
        try decode(try await send("POST", path, body: try FlareJSON.encoder().encode(body)))
    }

    func post<T: Decodable>(_ path: String, json: Data, as type: T.Type = T.self) async throws -> T {
        try decode(try await send("POST", path, body: json))
    }

    func post(_ path: String) async throws {
        _ = try await send("POST", path, body: nil)
    }

    func delete(_ path: String) async throws {
        _ = try await send("DELETE", path, body: nil)
    }

    private func decode<T: Decodable>(_ data: Data) throws -> T {
        try Self.decodeResponse(data)
    }

    static func decodeResponse<T: Decodable>(_ data: Data) throws -> T {
        do {
            return try FlareJSON.decoder().decode(T.self, from: data)
        } catch {
            throw CLIError("the server's answer was not understood (\(error)); are the CLI and server versions the same?")
        }
    }

    func send(_ method: String, _ path: String, body: Data?, contentType: String = "application/json") async throws
        -> Data
    {
        try await exchange(method, path, body: body, contentType: contentType).data
    }

    /// The response body and headers of a request; throws the server's error for a non-2xx status.
    func exchange(_ method: String, _ path: String, body: Data?, contentType: String = "application/json") async throws
        -> (data: Data, headers: HTTPHeaders)
    {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .RAW(value: method)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(data: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(120))
        } catch {
            throw CLIError("cannot reach the BurstFlare server at \(baseURL) (\(error)); is flare-server running? "
                + "Set the address with --url or FLARE_URL.")
        }
        let bytes = try await response.body.collect(upTo: 16 << 20)
        let data = Data(buffer: bytes)
        guard (200..<300).contains(response.status.code) else {
            if let body = try? FlareJSON.decoder().decode(ErrorBody.self, from: data) {
                throw ServerError(status: Int(response.status.code), code: body.error.code, message: body.error.message)
            }
            throw ServerError(status: Int(response.status.code), code: "http_\(response.status.code)",
                              message: "the server answered \(response.status.code) \(response.status.reasonPhrase)")
        }
        return (data, response.headers)
    }
}

/// Path-safe form of a name or id.
func escaped(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/")))
        ?? text
}

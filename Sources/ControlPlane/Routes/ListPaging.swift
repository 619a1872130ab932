import FlareContracts
import FlareHTTP
import Foundation
import HTTPTypes
import Hummingbird

/// `?limit=N&cursor=ID` on a list route: at most `limit` items (100 unless asked, 1000 at most)
/// after the item `cursor`. The next page, when there is one, is named by a `Link` header
/// (`<…?limit=N&cursor=ID>; rel="next"`), so the body stays a plain JSON array.
struct ListPaging: Sendable {
    static let defaultLimit = 100
    static let maxLimit = 1000
    let limit: Int
    let cursor: String?
    let path: String

    init(_ request: Request) throws {
        path = request.uri.path
        let query = request.uri.queryParameters
        if let asked = query["limit"].map(String.init) {
            guard let limit = Int(asked), (1...Self.maxLimit).contains(limit) else {
                throw APIError.badRequest("limit must be a whole number from 1 to \(Self.maxLimit)", code: "invalid_limit")
            }
            self.limit = limit
        } else {
            limit = Self.defaultLimit
        }
        cursor = query["cursor"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Runs the store's page query for this page (an unknown cursor is a 400).
    func fetch<Result>(_ query: (Int, String?) async throws -> Result) async throws -> Result {
        try await Paging.fetch(cursor: cursor) { try await query(limit, cursor) }
    }

    /// The page's items, with the `Link` to the next page when there is one.
    func answer<Item: Encodable & Sendable>(_ items: [Item], next: String?) -> Answer<[Item]> {
        .ok(items, headers: linkHeader(next: next))
    }

    /// The page of sessions already written as a JSON array, with the `Link` to the next page.
    func answer(json: [UInt8], next: String?) -> Answer<[SessionInfo]> {
        .written(json: json, headers: linkHeader(next: next))
    }

    private func linkHeader(next: String?) -> HTTPFields {
        var headers = HTTPFields()
        if let next, let link = HTTPField.Name("Link") {
            let escaped = next.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? next
            headers[link] = "<\(path)?limit=\(limit)&cursor=\(escaped)>; rel=\"next\""
        }
        return headers
    }
}

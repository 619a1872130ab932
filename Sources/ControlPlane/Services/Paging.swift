/// List queries take a cursor: the id of the last item of the previous page.
enum Paging {
    /// Runs a store's page query; a cursor that is not an item of that list is the caller's
    /// mistake (400 `invalid_cursor`), not a server error.
    static func fetch<T>(cursor: String?, _ query: () async throws -> T) async throws -> T {
        do {
            return try await query()
        } catch StoreError.unknownCursor {
            throw ServiceError(.invalid, code: "invalid_cursor", "cursor \(cursor ?? "") is not an item of this list")
        }
    }
}

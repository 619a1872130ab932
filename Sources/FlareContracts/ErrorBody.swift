/// The one error shape of the HTTP API: `{"error":{"code":…,"message":…,"requestId":…}}`.
public struct ErrorBody: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        /// Stable machine-readable code, e.g. `invalid_credentials`, `not_found`.
        public var code: String
        /// A sentence for a person.
        public var message: String
        public var requestId: String

        public init(code: String, message: String, requestId: String) {
            self.code = code
            self.message = message
            self.requestId = requestId
        }
    }

    public var error: Detail

    public init(code: String, message: String, requestId: String) {
        self.error = Detail(code: code, message: message, requestId: requestId)
    }
}

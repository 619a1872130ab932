/// The names users give templates and sessions: what `ssh NAME.flare` and URLs can carry, and
/// never mistakable for an id.
enum ResourceName {
    static func validate(_ name: String, what: String) throws {
        let allowed = name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }
        guard (1...63).contains(name.count), allowed, name.first != "-", name.last != "-",
              !name.hasPrefix("ses_"), !name.hasPrefix("tpl_")
        else {
            throw ServiceError(.invalid, code: "invalid_name",
                               "\(what) must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'")
        }
    }
}

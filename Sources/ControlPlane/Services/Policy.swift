/// The actor of a service call: who is asking.
struct Caller: Sendable, Equatable {
    let userId: String
    /// For event reasons and audit lines: `started by a@b.co`.
    let email: String
    /// The sign-in (device) whose access token made the call; nil for tokens from before sign-ins.
    let signInId: String?
    /// The request, for audit lines.
    let requestId: String?
    let address: String?

    init(_ user: UserRecord, signInId: String? = nil, requestId: String? = nil, address: String? = nil) {
        userId = user.id
        email = user.email
        self.signInId = signInId
        self.requestId = requestId
        self.address = address
    }
}

/// A role in the place a resource belongs to. Today every resource belongs to one account, whose
/// holder is its owner; workspaces (the next issue) give members the other roles.
enum Role: Int, Comparable, CaseIterable, Sendable {
    case viewer, member, admin, owner

    static func < (a: Role, b: Role) -> Bool { a.rawValue < b.rawValue }
}

/// What an actor may ask for.
enum Action: String, CaseIterable, Sendable {
    case sessionList, sessionCreate, sessionRead, sessionStart, sessionStop, sessionDelete, sessionLogs
    case sessionIssueRuntimeToken, sessionRevokeRuntimeTokens
    case snapshotList, snapshotDownload, snapshotSave, snapshotRestore, snapshotDelete
    case templateList, templateRead, templateCreate, templateVersionCreate, templateBundleUpload, templatePromote
    case buildLogRead
    /// On one's own account (`createdBy` is the account): its details, keys and sign-outs.
    case accountRead, accountSignOut, accountSignInList, accountSignInRevoke, deviceSignInDecide
    case sshKeyList, sshKeyAdd, sshKeyDelete
    /// On a workspace itself.
    case workspaceRead, workspaceMemberList, workspaceRename, workspaceDelete, workspaceAuditRead
}

/// The one authorization policy: for each action, the least role that may do it to anything, and
/// the least role that may do it to a resource the actor created. Every service call passes
/// through ``authorize(_:_:role:createdBy:)``. A resource the actor has no role on does not exist
/// for them (404, never 403, so ids cannot be probed).
enum Policy {
    struct Rule: Equatable, Sendable {
        /// May do it to any resource of the place.
        let any: Role
        /// May do it to a resource they created (at most `any`).
        let own: Role
    }

    /// The table. A switch, so an action without a rule does not compile.
    static func rule(for action: Action) -> Rule {
        switch action {
        case .sessionList, .sessionRead, .snapshotList, .templateList, .templateRead, .buildLogRead:
            Rule(any: .viewer, own: .viewer)
        case .sessionCreate: Rule(any: .member, own: .member)
        case .sessionStart, .sessionStop, .sessionDelete, .sessionLogs, .sessionRevokeRuntimeTokens,
             .snapshotDownload, .snapshotSave, .snapshotRestore, .snapshotDelete:
            Rule(any: .admin, own: .member)
        // A shell in someone else's session is the owner's alone.
        case .sessionIssueRuntimeToken: Rule(any: .owner, own: .member)
        // Templates are the place's, not their author's: managing them is an admin's.
        case .templateCreate, .templateVersionCreate, .templateBundleUpload, .templatePromote:
            Rule(any: .admin, own: .admin)
        case .workspaceRead, .workspaceMemberList: Rule(any: .viewer, own: .viewer)
        // The workspace itself is its owners' to change.
        case .workspaceRename, .workspaceDelete: Rule(any: .owner, own: .owner)
        case .workspaceAuditRead: Rule(any: .admin, own: .admin)
        // Only the account's holder acts on it; nobody acts on someone else's.
        case .accountRead, .accountSignOut, .accountSignInList, .accountSignInRevoke, .deviceSignInDecide,
             .sshKeyList, .sshKeyAdd, .sshKeyDelete:
            Rule(any: .owner, own: .viewer)
        }
    }

    /// Allows `action` for an actor holding `role` (nil: none) on a resource created by
    /// `createdBy` (nil for actions on the place itself), or throws the refusal.
    static func authorize(_ actor: Caller, _ action: Action, role: Role?, createdBy: String?) throws {
        guard let role else { throw ServiceError(.notFound, code: "not_found", "not found") }
        let rule = rule(for: action)
        let needed = createdBy == nil || createdBy == actor.userId ? rule.own : rule.any
        guard role >= needed else {
            throw ServiceError(.forbidden, code: "forbidden",
                               "\(action.rawValue) needs the \(needed) role; you are \(role)")
        }
    }

    /// The actor's role on a resource of account `ownerId`: today the account's holder owns
    /// everything in it, and nobody else has a role.
    static func role(of actor: Caller, inAccount ownerId: String) -> Role? {
        actor.userId == ownerId ? .owner : nil
    }
}

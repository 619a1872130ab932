@testable import ControlPlane
import Foundation
import Testing

/// The authorization policy, enumerated: every action, every role, on the caller's own resource
/// and on someone else's, against a table written out here.
@Suite struct PolicyTests {
    /// Per action: the least role on one's own resource, then on anyone's (v, m, a, o).
    static let expected: [Action: (own: Role, any: Role)] = [
        .sessionList: (.viewer, .viewer), .sessionRead: (.viewer, .viewer), .sessionCreate: (.member, .member),
        .sessionStart: (.member, .admin), .sessionStop: (.member, .admin), .sessionDelete: (.member, .admin),
        .sessionLogs: (.member, .admin), .sessionIssueRuntimeToken: (.member, .owner),
        .sessionRevokeRuntimeTokens: (.member, .admin),
        .snapshotList: (.viewer, .viewer), .snapshotDownload: (.member, .admin), .snapshotSave: (.member, .admin),
        .snapshotRestore: (.member, .admin), .snapshotDelete: (.member, .admin),
        .templateList: (.viewer, .viewer), .templateRead: (.viewer, .viewer), .buildLogRead: (.viewer, .viewer),
        .templateCreate: (.admin, .admin), .templateVersionCreate: (.admin, .admin),
        .templateBundleUpload: (.admin, .admin), .templatePromote: (.admin, .admin),
        .accountRead: (.viewer, .owner), .accountSignOut: (.viewer, .owner),
        .accountSignInList: (.viewer, .owner), .accountSignInRevoke: (.viewer, .owner),
        .deviceSignInDecide: (.viewer, .owner),
        .workspaceRead: (.viewer, .viewer), .workspaceMemberList: (.viewer, .viewer),
        .workspaceRename: (.owner, .owner), .workspaceDelete: (.owner, .owner), .workspaceAuditRead: (.admin, .admin), .sshKeyList: (.viewer, .owner),
        .sshKeyAdd: (.viewer, .owner), .sshKeyDelete: (.viewer, .owner),
    ]

    let caller = Caller(UserRecord(id: "usr_me", email: "me@example.com", passwordHash: "", createdAt: Date()))

    func allowed(_ action: Action, _ role: Role?, createdBy: String?) -> Bool {
        (try? Policy.authorize(caller, action, role: role, createdBy: createdBy)) != nil
    }

    @Test func everyActionForEveryRole() async {
        #expect(Set(Self.expected.keys) == Set(Action.allCases), "the table covers every action")
        for action in Action.allCases {
            guard let (own, any) = Self.expected[action] else { continue }
            for role in Role.allCases {
                #expect(allowed(action, role, createdBy: "usr_me") == (role >= own), "\(action) own as \(role)")
                #expect(allowed(action, role, createdBy: "usr_other") == (role >= any), "\(action) anyone's as \(role)")
            }
        }
    }

    /// Without a role the resource does not exist for the caller: a 404, never a 403.
    @Test func noRoleIsNotFound() async {
        for action in Action.allCases {
            #expect(throws: ServiceError(.notFound, code: "not_found", "not found")) {
                try Policy.authorize(caller, action, role: nil, createdBy: "usr_me")
            }
        }
        #expect(Policy.role(of: caller, inAccount: "usr_me") == .owner)
        #expect(Policy.role(of: caller, inAccount: "usr_other") == nil)
    }
}

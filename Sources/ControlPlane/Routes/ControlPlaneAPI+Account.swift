import FlareContracts
import Foundation
import Hummingbird

/// Account routes (who am I, sign-out, SSH keys): adapters over ``AccountService``.
extension ControlPlaneAPI {
    func addAccountRoutes(to group: RouterGroup<UserRequestContext>) {
        group.get("/me") { _, context in try accounts.me(context.caller, context.user) }

        group.post("/auth/logout") { _, context -> HTTPResponse.Status in
            try await accounts.logout(context.caller, accessTokenHash: context.accessTokenHash)
            return .noContent
        }

        group.post("/auth/logout-all") { _, context -> RevokeResponse in
            try await accounts.logoutEverywhere(context.caller)
        }

        group.get("/ssh-keys") { request, context -> EditedResponse<[SSHKeyInfo]> in
            let paging = try ListPaging(request)
            let page = try await accounts.sshKeys(context.caller, limit: paging.limit, after: paging.cursor)
            return paging.response(page.items, next: page.next)
        }

        group.post("/ssh-keys") { request, context -> EditedResponse<SSHKeyInfo> in
            let body = try await request.decodeJSON(SSHKeyCreateRequest.self, context: context)
            return EditedResponse(status: .created, response: try await accounts.addSSHKey(context.caller, body))
        }

        group.delete("/ssh-keys/{id}") { _, context -> HTTPResponse.Status in
            try await accounts.deleteSSHKey(context.caller, id: try context.parameters.require("id"))
            return .noContent
        }
    }
}

import FlareContracts
import Foundation
import Hummingbird

/// Account routes (who am I, sign-out, SSH keys): adapters over ``AccountService``.
extension ControlPlaneAPI {
    func addAccountRoutes(to group: RouterGroup<UserRequestContext>) {
        group.on(Endpoints.Auth.me) { _, context in .ok(try accounts.me(context.caller, context.user)) }

        group.on(Endpoints.Auth.logout) { _, context in
            try await accounts.logout(context.caller, accessTokenHash: context.accessTokenHash)
            return .noContent
        }

        group.on(Endpoints.Auth.logoutAll) { _, context in
            .ok(try await accounts.logoutEverywhere(context.caller))
        }

        group.on(Endpoints.Auth.signIns) { request, context in
            let paging = try ListPaging(request)
            let page = try await accounts.signIns(context.caller, limit: paging.limit, after: paging.cursor)
            return paging.answer(page.items, next: page.next)
        }

        group.on(Endpoints.Auth.revokeSignIn) { _, context in
            .ok(try await accounts.revokeSignIn(context.caller, id: try context.parameters.require("id")))
        }

        group.on(Endpoints.Auth.deviceLookup) { _, context, body in
            try takeDeviceDecision(context)
            return .ok(try await accounts.lookUpDeviceSignIn(context.caller, body))
        }

        for (endpoint, approve) in [(Endpoints.Auth.deviceApprove, true), (Endpoints.Auth.deviceDeny, false)] {
            group.on(endpoint) { _, context, body in
                try takeDeviceDecision(context)
                return .ok(try await accounts.decideDeviceSignIn(context.caller, body, approve: approve))
            }
        }

        group.on(Endpoints.SSHKeys.list) { request, context in
            let paging = try ListPaging(request)
            let page = try await accounts.sshKeys(context.caller, limit: paging.limit, after: paging.cursor)
            return paging.answer(page.items, next: page.next)
        }

        group.on(Endpoints.SSHKeys.add) { _, context, body in
            .created(try await accounts.addSSHKey(context.caller, body))
        }

        group.on(Endpoints.SSHKeys.delete) { _, context in
            try await accounts.deleteSSHKey(context.caller, id: try context.parameters.require("id"))
            return .noContent
        }
    }
}

extension ControlPlaneAPI {
    /// Device-code lookups and decisions are limited per account and per address (429 past either).
    func takeDeviceDecision(_ context: UserRequestContext) throws {
        try rateLimits.deviceDecisionsByAccount.take(context.caller.userId).enforce("device code decisions")
        try rateLimits.deviceDecisionsByAddress.take(context.addressKey)
            .enforce("device code decisions from this address")
    }
}

import FlareContracts
import FlareHTTP
import Foundation
import Hummingbird

extension ControlPlaneAPI {
    func addAccountRoutes(to group: RouterGroup<FlareRequestContext>) {
        group.get("/me") { _, context in try context.requireUser().info }

        group.post("/auth/logout") { _, context -> HTTPResponse.Status in
            let user = try context.requireUser()
            if let hash = context.accessTokenHash { try await store.revokeAccessToken(hash: hash, at: Date()) }
            try await store.audit(userId: user.id, action: "user.logout", target: user.id)
            return .noContent
        }

        // Signs out everywhere: every access token and runtime token of the user stops working, and
        // their open SSH and terminal connections are cut.
        group.post("/auth/logout-all") { _, context -> RevokeResponse in
            let user = try context.requireUser()
            let now = Date()
            _ = try await store.revokeAccessTokens(userId: user.id, at: now)
            let revoked = try await store.revokeRuntimeTokens(userId: user.id, at: now)
            let closed = revocations.publish(Revocation(.user, user.id, reason: "\(user.email) signed out everywhere"))
            try await store.audit(userId: user.id, action: "user.logout_all", target: user.id,
                                  detail: "\(revoked) runtime tokens, \(closed) connections")
            return RevokeResponse(revokedTokens: revoked, closedConnections: closed)
        }

        group.get("/ssh-keys") { request, context -> EditedResponse<[SSHKeyInfo]> in
            let user = try context.requireUser()
            let paging = try ListPaging(request)
            let page = try await paging.fetch { try await store.sshKeys(userId: user.id, limit: $0, after: $1) }
            return paging.response(page.items.map(\.info), next: page.next)
        }

        group.post("/ssh-keys") { request, context -> EditedResponse<SSHKeyInfo> in
            let user = try context.requireUser()
            let body = try await request.decodeJSON(SSHKeyCreateRequest.self, context: context)
            guard let key = SSHPublicKey(line: body.publicKey) else {
                throw APIError.badRequest(
                    "publicKey is not an OpenSSH public key (expected e.g. 'ssh-ed25519 AAAA… comment')",
                    code: "invalid_public_key")
            }
            let name = (body.name?.isEmpty == false ? body.name! : key.comment).prefix(100)
            let record = SSHKeyRecord(id: FlareID.make("key"), userId: user.id,
                                      name: name.isEmpty ? key.type : String(name),
                                      publicKey: key.line, fingerprint: key.fingerprint, createdAt: Date())
            do {
                try await store.insertSSHKey(record)
            } catch StoreError.duplicate {
                throw APIError.conflict("this key (\(key.fingerprint)) is already registered", code: "key_exists")
            }
            try await store.audit(userId: user.id, action: "ssh_key.add", target: record.id, detail: key.fingerprint)
            return EditedResponse(status: .created, response: record.info)
        }

        group.delete("/ssh-keys/{id}") { _, context -> HTTPResponse.Status in
            let user = try context.requireUser()
            let id = try context.parameters.require("id")
            guard try await store.deleteSSHKey(userId: user.id, id: id) else { throw APIError.notFound("ssh key") }
            try await store.audit(userId: user.id, action: "ssh_key.delete", target: id)
            return .noContent
        }
    }
}

import FlareContracts
import FlareHTTP
import Foundation
import Gateway
import Hummingbird
import NIOCore

extension ControlPlaneAPI {
    /// What standalone gateways call (gateway token): register, resolve a token, re-check open
    /// connections, and follow revocations.
    func addGatewayRoutes(to group: RouterGroup<GatewayLinkRequestContext>, backend: EmbeddedGatewayBackend,
                          verifier: RuntimeTokenVerifier) {
        group.on(Endpoints.GatewayLink.register) { _, context, body in
            guard let key = SSHPublicKey(line: body.serviceKey) else {
                throw APIError.badRequest("serviceKey is not an OpenSSH public key", code: "invalid_public_key")
            }
            try await store.registerGateway(GatewayRecord(serviceKey: key.line, name: String(body.name.prefix(100)),
                                                          registeredAt: Date()))
            context.logger.info("gateway registered", metadata: ["gateway.name": "\(body.name)",
                                                                 "gateway.key": "\(key.fingerprint)"])
            return .ok(GatewayRegisterResponse(
                runtimeTokenPublicKey: signingKey.publicKey.rawRepresentation.base64EncodedString()))
        }

        group.on(Endpoints.GatewayLink.resolve) { _, _, body in
            let claims: RuntimeTokenClaims
            do throws(RuntimeTokenError) {
                claims = try verifier.verify(body.token)
            } catch {
                throw APIError.unauthorized(error.description, code: error.code)
            }
            let session = try await backend.resolve(claims, token: body.token)
            return .ok(GatewayResolveResponse(
                endpoint: session.endpoint.description, hostPublicKey: session.hostPublicKey,
                wakeSeconds: session.wakeDuration.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }))
        }

        group.on(Endpoints.GatewayLink.keys) { _, _ in
            .ok(try await store.gateways().map {
                GatewayKeyInfo(name: $0.name, fingerprint: SSHPublicKey(line: $0.serviceKey)?.fingerprint ?? "?",
                               registeredAt: $0.registeredAt)
            })
        }

        group.on(Endpoints.GatewayLink.removeKey) { _, context, body in
            guard let gateway = try await store.gateways().first(where: {
                SSHPublicKey(line: $0.serviceKey)?.fingerprint == body.fingerprint
            }) else { throw APIError.notFound("gateway key \(body.fingerprint)") }
            guard gateway.name != "embedded" else {
                throw APIError.conflict("that is flare-server's own key, registered at every start", code: "embedded_key")
            }
            try await store.removeGateway(serviceKey: gateway.serviceKey)
            try await store.audit(userId: nil, action: "gateway.key.remove", target: body.fingerprint, detail: gateway.name)
            context.logger.info("gateway key removed", metadata: ["gateway.name": "\(gateway.name)",
                                                                  "gateway.key": "\(body.fingerprint)"])
            return .noContent
        }

        group.on(Endpoints.GatewayLink.check, bodyLimit: 4 << 20) { _, _, body in
            .ok(GatewayCheckResponse(revokedTokenIds: try await store.lostRuntimeTokens(ids: body.tokenIds)))
        }

        group.on(Endpoints.GatewayLink.revocations) { _, _ in
            let revocations = self.revocations.subscribe()
            return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: .init { writer in
                let encoder = FlareJSON.encoder()
                encoder.outputFormatting = []
                try await withThrowingTaskGroup(of: Void.self) { group in
                    let lines = AsyncStream.makeStream(of: RevocationStreamLine.self)
                    group.addTask {
                        for await revocation in revocations { lines.continuation.yield(.init(revocation: revocation)) }
                        lines.continuation.finish()
                    }
                    group.addTask {
                        while !Task.isCancelled {
                            lines.continuation.yield(.init(keepalive: true))
                            try await Task.sleep(for: .seconds(10))
                        }
                    }
                    for await line in lines.stream {
                        var bytes = try encoder.encode(line)
                        bytes.append(UInt8(ascii: "\n"))
                        try await writer.write(ByteBuffer(bytes: bytes))
                    }
                    group.cancelAll()
                }
                try await writer.finish(nil)
            })
        }
    }
}

import FlareContracts
import Foundation
import Testing

/// Keys made without libssh must be ones OpenSSH itself accepts.
@Suite struct OpenSSHKeyTests {
    @Test func generatedKeyIsReadByOpenSSHWithTheSameFingerprint() async throws {
        let directory = try TemporaryDirectory()
        let pair = OpenSSHKeyPair.generateEd25519(comment: "test@flare")
        let path = directory.path("id")
        FileManager.default.createFile(atPath: path, contents: Data(pair.privateKeyText.utf8),
                                       attributes: [.posixPermissions: 0o600])
        let derived = try await TestProcess.run(["ssh-keygen", "-y", "-f", path])
        #expect(derived.status == 0)
        #expect(derived.stdout.hasPrefix(pair.publicKeyLine.split(separator: " ").prefix(2).joined(separator: " ")))
        try (pair.publicKeyLine + "\n").write(toFile: path + ".pub", atomically: true, encoding: .utf8)
        let listed = try await TestProcess.run(["ssh-keygen", "-l", "-f", path + ".pub"])
        let key = try #require(SSHPublicKey(line: pair.publicKeyLine))
        #expect(listed.stdout.contains(key.fingerprint))
        #expect(key.comment == "test@flare")
    }

    @Test func malformedPublicKeysAreRejected() async {
        #expect(SSHPublicKey(line: "") == nil)
        #expect(SSHPublicKey(line: "ssh-ed25519") == nil)
        #expect(SSHPublicKey(line: "ssh-ed25519 not-base64!!") == nil)
        #expect(SSHPublicKey(line: "ssh-dss AAAAB3NzaC1kc3MAAACBAP") == nil)
        // A valid blob under the wrong type name.
        let pair = OpenSSHKeyPair.generateEd25519()
        let blob = pair.publicKeyLine.split(separator: " ")[1]
        #expect(SSHPublicKey(line: "ssh-rsa \(blob)") == nil)
    }
}

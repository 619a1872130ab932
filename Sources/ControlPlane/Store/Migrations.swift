import FlareContracts
import GRDB

/// The schema, as numbered migrations. A migration never changes once it has shipped: add a new one.
enum Migrations {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("0001_accounts_templates_sessions") { db in
            try db.create(table: "users") { t in
                t.primaryKey("id", .text)
                t.column("email", .text).notNull().unique().collate(.nocase)
                t.column("password_hash", .text).notNull()
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "access_tokens") { t in
                t.primaryKey("token_hash", .text)
                t.column("user_id", .text).notNull().indexed().references("users", onDelete: .cascade)
                t.column("created_at", .datetime).notNull()
                t.column("expires_at", .datetime).notNull()
                t.column("revoked_at", .datetime)
            }
            try db.create(table: "ssh_keys") { t in
                t.primaryKey("id", .text)
                t.column("user_id", .text).notNull().indexed().references("users", onDelete: .cascade)
                t.column("name", .text).notNull()
                t.column("public_key", .text).notNull()
                t.column("fingerprint", .text).notNull()
                t.column("created_at", .datetime).notNull()
                t.uniqueKey(["user_id", "fingerprint"])
            }
            try db.create(table: "templates") { t in
                t.primaryKey("id", .text)
                t.column("owner_id", .text).notNull().references("users", onDelete: .cascade)
                t.column("name", .text).notNull()
                t.column("description", .text).notNull().defaults(to: "")
                t.column("active_version_id", .text)
                t.column("created_at", .datetime).notNull()
                t.uniqueKey(["owner_id", "name"])
            }
            try db.create(table: "template_versions") { t in
                t.primaryKey("id", .text)
                t.column("template_id", .text).notNull().indexed().references("templates", onDelete: .cascade)
                t.column("version", .text).notNull()
                t.column("manifest_json", .text).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("promoted_at", .datetime)
                t.uniqueKey(["template_id", "version"])
            }
            try db.create(table: "sessions") { t in
                t.primaryKey("id", .text)
                t.column("owner_id", .text).notNull().indexed().references("users", onDelete: .cascade)
                t.column("name", .text).notNull()
                t.column("template_id", .text).notNull().references("templates")
                t.column("template_version_id", .text).notNull().references("template_versions")
                t.column("state", .text).notNull()
                t.column("state_reason", .text).notNull()
                t.column("host_private_key", .text).notNull()
                t.column("host_public_key", .text).notNull()
                t.column("agent_token_hash", .text).unique()
                t.column("agent_pid", .integer)
                t.column("agent_endpoint", .text)
                t.column("last_heartbeat_at", .datetime)
                t.column("activity_json", .text)
                t.column("created_at", .datetime).notNull()
                t.column("updated_at", .datetime).notNull()
            }
            // A name is unique among a user's live sessions; a deleted one frees it.
            try db.execute(sql: """
                CREATE UNIQUE INDEX sessions_owner_name_live ON sessions(owner_id, name) WHERE state != 'deleted'
                """)
            try db.create(table: "session_events") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("session_id", .text).notNull().indexed().references("sessions", onDelete: .cascade)
                t.column("from_state", .text)
                t.column("to_state", .text).notNull()
                t.column("reason", .text).notNull()
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "runtime_tokens") { t in
                t.primaryKey("id", .text)
                t.column("session_id", .text).notNull().indexed().references("sessions", onDelete: .cascade)
                t.column("user_id", .text).notNull().references("users", onDelete: .cascade)
                t.column("purpose", .text).notNull()
                t.column("issued_at", .datetime).notNull()
                t.column("expires_at", .datetime).notNull()
                t.column("revoked_at", .datetime)
            }
            try db.create(table: "audit_log") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("user_id", .text)
                t.column("action", .text).notNull()
                t.column("target", .text).notNull()
                t.column("detail", .text).notNull().defaults(to: "")
                t.column("created_at", .datetime).notNull()
            }
        }
        migrator.registerMigration("0002_snapshots") { db in
            try db.create(table: "snapshots") { t in
                t.primaryKey("id", .text)
                t.column("session_id", .text).notNull().indexed().references("sessions", onDelete: .cascade)
                t.column("blob_digest", .text).notNull()
                t.column("entry_count", .integer).notNull()
                t.column("total_bytes", .integer).notNull()
                t.column("archive_bytes", .integer).notNull()
                t.column("reason", .text).notNull()
                t.column("created_at", .datetime).notNull()
            }
            try db.alter(table: "sessions") { t in
                // Moves only once a snapshot's blob is stored and verified.
                t.add(column: "latest_snapshot_id", .text)
            }
        }
        migrator.registerMigration("0003_gateways") { db in
            // Gateways (the embedded one and standalone ones): their service keys log the terminal
            // bridge in to agents.
            try db.create(table: "gateways") { t in
                t.primaryKey("service_key", .text)
                t.column("name", .text).notNull()
                t.column("registered_at", .datetime).notNull()
            }
        }
        migrator.registerMigration("0004_template_builds") { db in
            try db.alter(table: "template_versions") { t in
                // not_needed (host runtime), awaiting_bundle, queued, building, succeeded, dead_lettered.
                t.add(column: "build_state", .text).notNull().defaults(to: "not_needed")
                t.add(column: "build_attempts", .integer).notNull().defaults(to: 0)
                t.add(column: "build_image", .text)
                t.add(column: "build_image_id", .text)
                t.add(column: "build_error", .text)
            }
        }
        migrator.registerMigration("0005_list_indexes") { db in
            // Session lists: an owner's sessions in creation order, paged by (created_at, id).
            try db.execute(sql: "CREATE INDEX sessions_owner_created ON sessions(owner_id, created_at, id)")
        }
        migrator.registerMigration("0006_sign_ins") { db in
            // Signed-in devices. Access tokens live minutes; each refresh token works once, and a
            // second use of one ends its sign-in (and every token issued under it).
            try db.create(table: "sign_ins") { t in
                t.primaryKey("id", .text)
                t.column("user_id", .text).notNull().indexed().references("users", onDelete: .cascade)
                t.column("created_at", .datetime).notNull()
                t.column("last_used_at", .datetime).notNull()
                t.column("address", .text).notNull().defaults(to: "")
                t.column("client", .text).notNull().defaults(to: "")
                t.column("revoked_at", .datetime)
                t.column("revoked_reason", .text)
            }
            try db.create(table: "refresh_tokens") { t in
                t.primaryKey("token_hash", .text)
                t.column("sign_in_id", .text).notNull().indexed().references("sign_ins", onDelete: .cascade)
                t.column("created_at", .datetime).notNull()
                t.column("expires_at", .datetime).notNull()
                t.column("used_at", .datetime)
            }
            try db.alter(table: "access_tokens") { t in
                t.add(column: "sign_in_id", .text).references("sign_ins", onDelete: .cascade)
            }
            try db.create(index: "access_tokens_sign_in", on: "access_tokens", columns: ["sign_in_id"])
            try db.alter(table: "runtime_tokens") { t in
                t.add(column: "sign_in_id", .text)
            }
            try db.create(index: "runtime_tokens_sign_in", on: "runtime_tokens", columns: ["sign_in_id"])
            // Each live token from before becomes a sign-in of its own, so it is listed and can be
            // ended; it keeps working until it expires (it has no refresh token).
            let tokens = try Row.fetchAll(db, sql: """
                SELECT token_hash, user_id, created_at FROM access_tokens WHERE revoked_at IS NULL
                """)
            for token in tokens {
                let id = FlareID.make("sgn")
                try db.execute(sql: """
                    INSERT INTO sign_ins (id, user_id, created_at, last_used_at, address, client)
                    VALUES (?, ?, ?, ?, '', 'a token from before sign-ins rotated')
                    """, arguments: [id, token["user_id"], token["created_at"], token["created_at"]])
                try db.execute(sql: "UPDATE access_tokens SET sign_in_id = ? WHERE token_hash = ?",
                               arguments: [id, token["token_hash"]])
            }
        }
        migrator.registerMigration("0007_device_authorizations") { db in
            // Device sign-ins (RFC 8628): pending until a signed-in user approves or denies the
            // user code, then used once by the device's poll; expired after 10 minutes.
            try db.create(table: "device_authorizations") { t in
                t.primaryKey("device_code_hash", .text)
                t.column("user_code", .text).notNull().unique()
                t.column("state", .text).notNull()
                t.column("user_id", .text).references("users", onDelete: .cascade)
                t.column("address", .text).notNull()
                t.column("client", .text).notNull()
                t.column("interval_seconds", .integer).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("expires_at", .datetime).notNull()
                t.column("last_polled_at", .datetime)
            }
        }
        migrator.registerMigration("0008_workspaces") { db in
            // Workspaces own templates and sessions; members hold a role in each. Every account has
            // a personal workspace (`personal_of`), which holds what the account owned before.
            try db.create(table: "workspaces") { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull().unique().collate(.nocase)
                t.column("personal_of", .text).unique().references("users", onDelete: .cascade)
                t.column("created_by", .text).references("users", onDelete: .setNull)
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "workspace_members") { t in
                t.column("workspace_id", .text).notNull().references("workspaces", onDelete: .cascade)
                t.column("user_id", .text).notNull().indexed().references("users", onDelete: .cascade)
                t.column("role", .text).notNull()
                t.column("created_at", .datetime).notNull()
                t.primaryKey(["workspace_id", "user_id"])
            }
            for table in ["templates", "sessions"] {
                try db.alter(table: table) { t in
                    t.add(column: "workspace_id", .text).references("workspaces", onDelete: .cascade)
                }
                try db.create(index: "\(table)_workspace", on: table, columns: ["workspace_id"])
                // Until every write names its workspace, a new row goes to its owner's personal one.
                try db.execute(sql: """
                    CREATE TRIGGER \(table)_personal_workspace AFTER INSERT ON \(table) WHEN NEW.workspace_id IS NULL
                    BEGIN
                        UPDATE \(table) SET workspace_id = (SELECT id FROM workspaces WHERE personal_of = NEW.owner_id)
                        WHERE id = NEW.id;
                    END
                    """)
            }
            for user in try Row.fetchAll(db, sql: "SELECT id, email, created_at FROM users ORDER BY created_at") {
                let workspace = try Store.insertPersonalWorkspace(db, userId: user["id"], email: user["email"],
                                                                  at: user["created_at"])
                for table in ["templates", "sessions"] {
                    try db.execute(sql: "UPDATE \(table) SET workspace_id = ? WHERE owner_id = ?",
                                   arguments: [workspace, user["id"] as String])
                }
            }
        }
        migrator.registerMigration("0009_audit") { db in
            // Audit you can read: each line names its workspace, outcome, request id and address.
            try db.alter(table: "audit_log") { t in
                // No foreign key: a deleted workspace's trail stays.
                t.add(column: "workspace_id", .text)
                t.add(column: "outcome", .text).notNull().defaults(to: "success")
                t.add(column: "request_id", .text)
                t.add(column: "address", .text)
            }
            try db.create(index: "audit_log_workspace", on: "audit_log", columns: ["workspace_id", "id"])
            try db.execute(sql: """
                UPDATE audit_log SET workspace_id = (SELECT id FROM workspaces WHERE personal_of = audit_log.user_id)
                WHERE user_id IS NOT NULL
                """)
            // A line that names no workspace belongs to its actor's personal one.
            try db.execute(sql: """
                CREATE TRIGGER audit_log_personal_workspace AFTER INSERT ON audit_log
                WHEN NEW.workspace_id IS NULL AND NEW.user_id IS NOT NULL
                BEGIN
                    UPDATE audit_log SET workspace_id = (SELECT id FROM workspaces WHERE personal_of = NEW.user_id)
                    WHERE id = NEW.id;
                END
                """)
        }
        return migrator
    }
}

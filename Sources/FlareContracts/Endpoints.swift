/// Every route of the control plane and the gateway. Lists (`[Item]` answers) take `limit` and
/// `cursor` and name their next page in a `Link` header unless noted.
public enum Endpoints {
    public static let health = Endpoint<NoParameters, NoBody, HealthResponse>(.get, "/api/health")

    /// Sign-up and sign-in (no token needed), who am I, sign-out.
    public enum Auth {
        public static let register = Endpoint<NoParameters, Credentials, AuthResponse>(.post, "/api/auth/register")
        public static let login = Endpoint<NoParameters, Credentials, AuthResponse>(.post, "/api/auth/login")
        public static let me = Endpoint<NoParameters, NoBody, UserInfo>(.get, "/api/me")
        public static let logout = Endpoint<NoParameters, NoBody, NoContent>(.post, "/api/auth/logout")
        /// Signs out every device: all access tokens, runtime tokens and open connections.
        public static let logoutAll = Endpoint<NoParameters, NoBody, RevokeResponse>(.post, "/api/auth/logout-all")
        /// A refresh token for a new access token and a new refresh token (no access token needed).
        /// Each refresh token works once: a second use ends its whole sign-in.
        public static let refresh = Endpoint<NoParameters, RefreshRequest, AuthResponse>(.post, "/api/auth/refresh")
        /// The caller's signed-in devices (sign-ins that have not ended).
        public static let signIns = Endpoint<NoParameters, NoBody, [SignInInfo]>(.get, "/api/auth/sessions")
        /// Ends one sign-in: its tokens stop working and its open connections are cut.
        public static let revokeSignIn = Endpoint<OneParameter, NoBody, RevokeResponse>(.delete, "/api/auth/sessions/{id}")
        /// Device sign-in (RFC 8628), no token needed: the codes, then the device's polls.
        public static let deviceAuthorization = Endpoint<NoParameters, DeviceAuthorizationRequest, DeviceAuthorizationResponse>(
            .post, "/api/auth/device")
        public static let deviceToken = Endpoint<NoParameters, DeviceTokenRequest, AuthResponse>(.post, "/api/auth/device/token")
        /// A pending code's device (address, client), for the user to check before deciding.
        public static let deviceLookup = Endpoint<NoParameters, DeviceDecisionRequest, DeviceDecisionResponse>(
            .post, "/api/auth/device/lookup")
        /// A signed-in user approves or denies a device's code.
        public static let deviceApprove = Endpoint<NoParameters, DeviceDecisionRequest, DeviceDecisionResponse>(
            .post, "/api/auth/device/approve")
        public static let deviceDeny = Endpoint<NoParameters, DeviceDecisionRequest, DeviceDecisionResponse>(
            .post, "/api/auth/device/deny")
    }

    /// Workspaces the caller is a member of (not paged: an account is in a few). A workspace the
    /// caller is not in is a 404, named or numbered.
    public enum Workspaces {
        public static let list = Endpoint<NoParameters, NoBody, [WorkspaceInfo]>(.get, "/api/workspaces")
        public static let create = Endpoint<NoParameters, WorkspaceNameRequest, WorkspaceInfo>(.post, "/api/workspaces")
        /// A workspace by name or id.
        public static let get = Endpoint<OneParameter, NoBody, WorkspaceInfo>(.get, "/api/workspaces/{workspace}")
        public static let rename = Endpoint<OneParameter, WorkspaceNameRequest, WorkspaceInfo>(.patch, "/api/workspaces/{workspace}")
        /// Only an empty workspace (no templates, no live sessions), never a personal one.
        public static let delete = Endpoint<OneParameter, NoBody, NoContent>(.delete, "/api/workspaces/{workspace}")
        /// Every member with their role (not paged).
        public static let members = Endpoint<OneParameter, NoBody, [WorkspaceMemberInfo]>(.get, "/api/workspaces/{workspace}/members")
        /// Newest first; `since` (ISO 8601), `actor` (an email) and `action` (a prefix such as `session.`) filter it. Admins.
        public static let audit = Endpoint<OneParameter, NoBody, [AuditEntry]>(.get, "/api/workspaces/{workspace}/audit")
    }

    public enum SSHKeys {
        public static let list = Endpoint<NoParameters, NoBody, [SSHKeyInfo]>(.get, "/api/ssh-keys")
        public static let add = Endpoint<NoParameters, SSHKeyCreateRequest, SSHKeyInfo>(.post, "/api/ssh-keys")
        public static let delete = Endpoint<OneParameter, NoBody, NoContent>(.delete, "/api/ssh-keys/{id}")
    }

    public enum Templates {
        public static let list = Endpoint<NoParameters, NoBody, [TemplateInfo]>(.get, "/api/templates")
        public static let create = Endpoint<NoParameters, TemplateCreateRequest, TemplateInfo>(.post, "/api/templates")
        /// A template by name or id.
        public static let get = Endpoint<OneParameter, NoBody, TemplateInfo>(.get, "/api/templates/{template}")
        /// `{"version": "1", "manifest": {…}}`, sent as written: the server names a bad field.
        public static let createVersion = Endpoint<OneParameter, JSONValue, TemplateVersionInfo>(
            .post, "/api/templates/{template}/versions")
        public static let promote = Endpoint<OneParameter, TemplatePromoteRequest, TemplateInfo>(
            .post, "/api/templates/{template}/promote")
        /// The version's files as a tar (zstd allowed).
        public static let uploadBundle = Endpoint<TwoParameters, RawBytes, TemplateVersionInfo>(
            .put, "/api/templates/{template}/versions/{version}/bundle")
        /// Plain text; with `follow=true`, streamed until the build ends.
        public static let buildLog = Endpoint<TwoParameters, NoBody, RawBytes>(
            .get, "/api/templates/{template}/versions/{version}/build-log")
    }

    public enum Sessions {
        public static let list = Endpoint<NoParameters, NoBody, [SessionInfo]>(.get, "/api/sessions")
        public static let create = Endpoint<NoParameters, SessionCreateRequest, SessionInfo>(.post, "/api/sessions")
        /// A session by name or id.
        public static let get = Endpoint<OneParameter, NoBody, SessionInfo>(.get, "/api/sessions/{session}")
        public static let events = Endpoint<OneParameter, NoBody, [SessionEvent]>(.get, "/api/sessions/{session}/events")
        public static let start = Endpoint<OneParameter, NoBody, SessionInfo>(.post, "/api/sessions/{session}/start")
        public static let stop = Endpoint<OneParameter, NoBody, SessionInfo>(.post, "/api/sessions/{session}/stop")
        public static let delete = Endpoint<OneParameter, NoBody, NoContent>(.delete, "/api/sessions/{session}")
        /// The agent's recent log as plain text (`lines`, 200 unless asked).
        public static let logs = Endpoint<OneParameter, NoBody, RawBytes>(.get, "/api/sessions/{session}/logs")
        public static let runtimeToken = Endpoint<OneParameter, RuntimeTokenRequest, RuntimeTokenResponse>(
            .post, "/api/sessions/{session}/runtime-token")
        public static let revokeRuntimeTokens = Endpoint<OneParameter, NoBody, RevokeResponse>(
            .post, "/api/sessions/{session}/runtime-tokens/revoke")
    }

    /// A session's snapshots as its owner sees them.
    public enum Snapshots {
        /// Every snapshot of the session, newest first (not paged: a session keeps a few).
        public static let list = Endpoint<OneParameter, NoBody, [SnapshotInfo]>(.get, "/api/sessions/{session}/snapshots")
        public static let save = Endpoint<OneParameter, NoBody, SnapshotInfo>(.post, "/api/sessions/{session}/snapshots")
        /// The archive (`application/zstd`).
        public static let content = Endpoint<TwoParameters, NoBody, RawBytes>(
            .get, "/api/sessions/{session}/snapshots/{id}/content")
        /// 200 when the running session restored it now, 202 when its next wake will.
        public static let restore = Endpoint<TwoParameters, NoBody, SnapshotInfo>(
            .post, "/api/sessions/{session}/snapshots/{id}/restore")
        public static let delete = Endpoint<TwoParameters, NoBody, NoContent>(
            .delete, "/api/sessions/{session}/snapshots/{id}")
    }

    /// The agent's dial-home API, over its session's agent channel with the agent token.
    public enum Agent {
        public static let register = Endpoint<NoParameters, AgentRegisterRequest, NoContent>(.post, "/agent/v1/register")
        public static let config = Endpoint<NoParameters, NoBody, AgentConfig>(.get, "/agent/v1/config")
        public static let ready = Endpoint<NoParameters, AgentHeartbeat, NoContent>(.post, "/agent/v1/ready")
        public static let failed = Endpoint<NoParameters, AgentFailure, NoContent>(.post, "/agent/v1/failed")
        public static let heartbeat = Endpoint<NoParameters, AgentHeartbeat, NoContent>(.post, "/agent/v1/heartbeat")
        /// A long poll: the next command, or 204 (nil) when none came within 25 s.
        public static let nextCommand = Endpoint<NoParameters, NoBody, AgentCommand?>(.get, "/agent/v1/commands")
        public static let commandResult = Endpoint<OneParameter, AgentCommandResult, NoContent>(
            .post, "/agent/v1/commands/{id}/result")
        /// A snapshot archive, with its digest and counts in `X-Flare-*` headers.
        public static let uploadSnapshot = Endpoint<NoParameters, RawBytes, SnapshotInfo>(.put, "/agent/v1/snapshots")
        public static let snapshotContent = Endpoint<OneParameter, NoBody, RawBytes>(.get, "/agent/v1/snapshots/{id}/content")
    }

    /// What a standalone gateway calls, with the gateway token.
    public enum GatewayLink {
        public static let register = Endpoint<NoParameters, GatewayRegisterRequest, GatewayRegisterResponse>(
            .post, "/gateway/v1/register")
        public static let resolve = Endpoint<NoParameters, GatewayResolveRequest, GatewayResolveResponse>(
            .post, "/gateway/v1/resolve")
        /// The registered service keys (not paged: a deployment has a few gateways).
        public static let keys = Endpoint<NoParameters, NoBody, [GatewayKeyInfo]>(.get, "/gateway/v1/keys")
        public static let removeKey = Endpoint<NoParameters, GatewayKeyRemoveRequest, NoContent>(
            .post, "/gateway/v1/keys/remove")
        /// Which of these runtime tokens lost access.
        public static let check = Endpoint<NoParameters, GatewayCheckRequest, GatewayCheckResponse>(
            .post, "/gateway/v1/check")
        /// One ``RevocationStreamLine`` per line (`application/x-ndjson`), a keepalive every 10 s.
        public static let revocations = Endpoint<NoParameters, NoBody, RawBytes>(.get, "/gateway/v1/revocations")
    }

    /// The gateway's WebSocket routes, with a runtime token.
    public enum Gateway {
        /// SSH bytes in binary frames.
        public static let ssh = Endpoint<OneParameter, NoBody, WebSocketUpgrade>(.get, "/gateway/ssh/{session}")
        /// A browser terminal: ``TerminalMessage`` frames.
        public static let terminal = Endpoint<OneParameter, NoBody, WebSocketUpgrade>(.get, "/gateway/terminal/{session}")
    }
}

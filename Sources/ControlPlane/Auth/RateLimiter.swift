import FlareHTTP
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Token buckets by key (an address, an account): `limit` requests per `period`, refilled
/// continuously. Pure bookkeeping; the clock comes in with each call.
final class RateLimiter: @unchecked Sendable {
    struct Rule: Sendable {
        /// Requests allowed in a burst and per `period`.
        var limit: Int
        var period: TimeInterval
    }

    /// What one request got: allowed or not, and what the RateLimit headers say.
    struct Decision: Equatable {
        var allowed: Bool
        var limit: Int
        var remaining: Int
        /// Seconds until a request is allowed again (0 when one is).
        var retryAfter: Int
        /// Seconds until the bucket is full again.
        var reset: Int
    }

    private struct Bucket {
        var tokens: Double
        var updated: Date
    }

    let rule: Rule
    private let lock = NSLock()
    private var buckets: [String: Bucket] = [:]

    init(_ rule: Rule) {
        self.rule = rule
    }

    func take(_ key: String, now: Date = Date()) -> Decision {
        lock.withLock {
            let rate = Double(rule.limit) / rule.period
            var bucket = buckets[key] ?? Bucket(tokens: Double(rule.limit), updated: now)
            bucket.tokens = min(Double(rule.limit), bucket.tokens + now.timeIntervalSince(bucket.updated) * rate)
            bucket.updated = now
            let allowed = bucket.tokens >= 1
            if allowed { bucket.tokens -= 1 }
            buckets[key] = bucket
            if buckets.count > 100_000 { prune(now: now) }
            return Decision(
                allowed: allowed, limit: rule.limit, remaining: Int(bucket.tokens),
                retryAfter: allowed ? 0 : Int(((1 - bucket.tokens) / rate).rounded(.up)),
                reset: Int(((Double(rule.limit) - bucket.tokens) / rate).rounded(.up)))
        }
    }

    /// Forgets full buckets, so a flood of distinct keys cannot grow memory without end.
    private func prune(now: Date) {
        let rate = Double(rule.limit) / rule.period
        buckets = buckets.filter { Double(rule.limit) > $0.value.tokens + now.timeIntervalSince($0.value.updated) * rate }
    }
}

extension RateLimiter.Decision {
    /// The IETF draft's `RateLimit-*` fields, plus `Retry-After` on a refusal.
    var headers: HTTPFields {
        var fields: HTTPFields = [
            HTTPField.Name("RateLimit-Limit")!: "\(limit)",
            HTTPField.Name("RateLimit-Remaining")!: "\(remaining)",
            HTTPField.Name("RateLimit-Reset")!: "\(reset)",
        ]
        if !allowed { fields[.retryAfter] = "\(retryAfter)" }
        return fields
    }

    /// Throws 429 with the headers when the request is over the limit.
    func enforce(_ what: String) throws {
        guard !allowed else { return }
        var error = APIError(.tooManyRequests, code: "rate_limited",
                             "too many \(what); try again in \(retryAfter) s")
        error.headers = headers
        throw error
    }
}

/// The limits on the routes that take credentials or hand out tokens, per address and per
/// account: a guessing attacker is slowed whichever one they vary.
struct AuthRateLimits: Sendable {
    let loginByAddress: RateLimiter
    let loginByAccount: RateLimiter
    let registerByAddress: RateLimiter
    let tokensByAccount: RateLimiter
    /// Refreshes: a token is 256 random bits, so this only bounds load from one address.
    let refreshByAddress: RateLimiter
    /// Device codes asked for, and device polls (each device also keeps to its interval).
    let deviceByAddress: RateLimiter
    /// Approvals and denials: a user code is 8 letters, so guessing one is slowed per account
    /// and per address (accounts are cheap to make).
    let deviceDecisionsByAccount: RateLimiter
    let deviceDecisionsByAddress: RateLimiter

    init(login: RateLimiter.Rule = .init(limit: 10, period: 60),
         register: RateLimiter.Rule = .init(limit: 20, period: 3600),
         tokens: RateLimiter.Rule = .init(limit: 120, period: 60)) {
        loginByAddress = RateLimiter(login)
        loginByAccount = RateLimiter(login)
        registerByAddress = RateLimiter(register)
        tokensByAccount = RateLimiter(tokens)
        refreshByAddress = RateLimiter(tokens)
        deviceByAddress = RateLimiter(tokens)
        deviceDecisionsByAccount = RateLimiter(login)
        deviceDecisionsByAddress = RateLimiter(.init(limit: 30, period: 60))
    }
}

extension FlareRequestContext {
    /// The key for per-address limits (see ``RateLimiter/addressKey(_:)``).
    var clientAddress: String { RateLimiter.addressKey(connectionChannel.remoteAddress) }

    /// Where a call came from, as a sign-in records it: the client's address and `User-Agent`.
    func clientInfo(_ request: Request) -> ClientInfo {
        // The client names itself: no control, format (bidi) or other invisible characters.
        let agent = (request.headers[.userAgent] ?? "").unicodeScalars.filter {
            ![.control, .format, .unassigned, .privateUse, .surrogate, .lineSeparator, .paragraphSeparator]
                .contains($0.properties.generalCategory)
        }
        return ClientInfo(address: connectionChannel.remoteAddress?.ipAddress ?? "local",
                          userAgent: String(String.UnicodeScalarView(agent).prefix(200)))
    }
}

extension RateLimiter {
    /// A client's address without its port. An IPv6 client is keyed by its /64, the smallest block
    /// one subscriber is given, so rotating through the addresses of one's own network does not
    /// reset a limit; an IPv4 client of a dual-stack listener (`::ffff:a.b.c.d`) by its IPv4 address.
    static func addressKey(_ address: SocketAddress?) -> String {
        guard let address else { return "local" }
        if case .v6(let v6) = address {
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            if bytes.prefix(10).allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
                return bytes.suffix(4).map(String.init).joined(separator: ".")
            }
            return stride(from: 0, to: 8, by: 2).map { String(format: "%02x%02x", bytes[$0], bytes[$0 + 1]) }
                .joined(separator: ":") + "::/64"
        }
        return address.ipAddress ?? address.pathname ?? "local"
    }
}

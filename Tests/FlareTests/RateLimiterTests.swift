@testable import ControlPlane
import NIOCore
import Testing

/// Who shares a per-address bucket: what an attacker varies to dodge one.
struct RateLimiterTests {
    @Test func addressesOfOneIPv6NetworkShareABucketAndIPv4ClientsKeepTheirOwn() async throws {
        let key = { (ip: String) in RateLimiter.addressKey(try SocketAddress(ipAddress: ip, port: 4000)) }
        #expect(try key("2001:db8:1:2::1") == key("2001:db8:1:2:ffff:1:2:3"), "one /64, one bucket")
        #expect(try key("2001:db8:1:2::1") != key("2001:db8:1:3::1"), "another /64")
        #expect(try key("2001:db8:1:2::1") == "2001:0db8:0001:0002::/64")
        #expect(try key("::ffff:192.0.2.7") == "192.0.2.7", "an IPv4 client of a dual-stack listener")
        #expect(try key("::ffff:192.0.2.7") != key("::ffff:192.0.2.8"))
        #expect(try key("192.0.2.7") == "192.0.2.7")
        #expect(RateLimiter.addressKey(nil) == "local")
    }
}

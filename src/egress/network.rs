//! The network half of the egress policy: which addresses an outbound connection may reach.
//!
//! Only public unicast addresses are reachable by default. Loopback, private (RFC 1918, IPv6
//! ULA), link-local (which holds the cloud metadata services at 169.254.169.254 and
//! fd00:ec2::254), CGNAT, unspecified, multicast, documentation and other reserved ranges are
//! refused, and so are the IPv6 forms that embed one of them (IPv4-mapped, IPv4-compatible,
//! NAT64 and 6to4). `LATCHKEY_EGRESS_ALLOW_NETWORKS` opens chosen ranges.
//!
//! The check is made on the address the connection uses: [`GuardedResolver`] is the HTTP
//! client's only resolver and drops every address the policy refuses, so a name that
//! resolves to a private address (or that changes its answer between a check and the
//! connection: DNS rebinding) never reaches it. IP literals in URLs bypass resolvers, so the
//! client checks them with [`NetworkPolicy::permits`] before each hop.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which addresses outbound requests may reach.
#[derive(Debug, Clone, Default)]
pub struct NetworkPolicy {
    allow: Vec<IpNet>,
}

impl NetworkPolicy {
    /// Public addresses, plus the networks in `allow`.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// Parses `LATCHKEY_EGRESS_ALLOW_NETWORKS`: comma-separated CIDRs (`127.0.0.0/8,::1/128`).
    pub fn parse_allow_list(text: &str) -> Result<Vec<IpNet>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .map(|n| n.trunc())
                    .map_err(|_| format!("{s:?} is not a CIDR network such as 127.0.0.0/8"))
            })
            .collect()
    }

    /// Whether a connection may go to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|n| n.contains(&ip))
            || embedded_v4(ip)
                .is_some_and(|v4| self.allow.iter().any(|n| n.contains(&IpAddr::V4(v4))))
            || is_public(ip)
    }
}

/// The IPv4 address an IPv6 address stands for, when it embeds one (IPv4-mapped,
/// IPv4-compatible, NAT64 well-known prefix, 6to4).
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    let s = v6.segments();
    let last_two = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        // ::a.b.c.d (deprecated IPv4-compatible), but not :: and ::1
        [0, 0, 0, 0, 0, 0, _, _] if u32::from(last_two()) > 1 => Some(last_two()),
        // ::ffff:0:a.b.c.d (IPv4-translated, SIIT)
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(last_two()),
        // 64:ff9b::a.b.c.d (NAT64)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last_two()),
        // 2002:AABB:CCDD::/48 (6to4)
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    const REFUSED: &[(u32, u8)] = &[
        (0x0000_0000, 8),  // 0.0.0.0/8: "this network", unspecified
        (0x0a00_0000, 8),  // 10.0.0.0/8: private
        (0x6440_0000, 10), // 100.64.0.0/10: CGNAT
        (0x7f00_0000, 8),  // 127.0.0.0/8: loopback
        (0xa9fe_0000, 16), // 169.254.0.0/16: link-local, cloud metadata
        (0xac10_0000, 12), // 172.16.0.0/12: private
        (0xc000_0000, 24), // 192.0.0.0/24: IETF protocol assignments
        (0xc000_0200, 24), // 192.0.2.0/24: documentation
        (0xc058_6300, 24), // 192.88.99.0/24: 6to4 relay anycast
        (0xc0a8_0000, 16), // 192.168.0.0/16: private
        (0xc612_0000, 15), // 198.18.0.0/15: benchmarking
        (0xc633_6400, 24), // 198.51.100.0/24: documentation
        (0xcb00_7100, 24), // 203.0.113.0/24: documentation
        (0xe000_0000, 4),  // 224.0.0.0/4: multicast
        (0xf000_0000, 4),  // 240.0.0.0/4: reserved, broadcast
    ];
    let bits = u32::from(ip);
    !REFUSED
        .iter()
        .any(|&(net, len)| bits >> (32 - len) == net >> (32 - len))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    const REFUSED: &[(u128, u8)] = &[
        (0, 128),                          // :: unspecified
        (1, 128),                          // ::1 loopback
        (0x0064_ff9b_0001_u128 << 80, 48), // 64:ff9b:1::/48 local-use NAT64
        (0x0100_u128 << 112, 64),          // 100::/64 discard
        (0x2001_u128 << 112, 23),          // 2001::/23 IETF (Teredo, ORCHID, …)
        (0x2001_0db8_u128 << 96, 32),      // 2001:db8::/32 documentation
        (0x3fff_u128 << 112, 20),          // 3fff::/20 documentation
        (0xfc00_u128 << 112, 7),           // fc00::/7 unique local (incl. fd00:ec2::254)
        (0xfe80_u128 << 112, 10),          // fe80::/10 link-local
        (0xfec0_u128 << 112, 10),          // fec0::/10 site-local (deprecated)
        (0xff00_u128 << 112, 8),           // ff00::/8 multicast
    ];
    let bits = u128::from(ip);
    !REFUSED
        .iter()
        .any(|&(net, len)| bits >> (128 - len) == net >> (128 - len))
}

/// Why a name could not be used: every address it resolved to is refused.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to addresses the egress network policy refuses")]
pub struct Refused {
    pub host: String,
}

/// The HTTP client's resolver: the system's, minus every address the policy refuses.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<NetworkPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<NetworkPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if permitted.is_empty() {
                return Err(Box::new(Refused { host }) as _);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s} is an address"))
    }

    #[test]
    fn non_public_ranges_are_refused() {
        let policy = NetworkPolicy::default();
        for refused in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:7f00:1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:0a00:0001::1",
            "2001:db8::1",
        ] {
            assert!(!policy.permits(ip(refused)), "{refused} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let policy = NetworkPolicy::default();
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::808:808",
        ] {
            assert!(policy.permits(ip(public)), "{public} is public");
        }
    }

    #[test]
    fn the_allow_list_opens_only_its_ranges() {
        let allow = NetworkPolicy::parse_allow_list(" 127.0.0.0/8, ::1/128 ").expect("valid");
        let policy = NetworkPolicy::new(allow);
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::1")));
        assert!(policy.permits(ip("::ffff:127.0.0.1")));
        assert!(!policy.permits(ip("10.0.0.1")));
        assert!(!policy.permits(ip("169.254.169.254")));
        assert!(NetworkPolicy::parse_allow_list("127.0.0.1/33").is_err());
        assert!(NetworkPolicy::parse_allow_list("localhost").is_err());
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        let refusing = GuardedResolver::new(Arc::new(NetworkPolicy::default()));
        let name: Name = "localhost".parse().expect("a name");
        let err = match refusing.resolve(name).await {
            Ok(_) => panic!("localhost must not resolve under the default policy"),
            Err(e) => e,
        };
        assert!(err.downcast_ref::<Refused>().is_some());

        let allow = NetworkPolicy::parse_allow_list("127.0.0.0/8,::1/128").expect("valid");
        let allowing = GuardedResolver::new(Arc::new(NetworkPolicy::new(allow)));
        let name: Name = "localhost".parse().expect("a name");
        let addrs: Vec<SocketAddr> = allowing.resolve(name).await.expect("resolves").collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}

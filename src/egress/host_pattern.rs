//! `HostPattern`: one entry of a credential's `allowed_hosts`, and the rule
//! deciding whether an outbound URL may receive that credential.
//!
//! Grammar (all parts but the host optional):
//! `[http:// | https://] host [:port] [path]` where `host` is a DNS name, a
//! `*.`-wildcard over a name of at least two labels, an IPv4 literal or a
//! bracketed IPv6 literal, and `path` is either an exact path (`/api`) or a
//! prefix ending in `/*` (`/api/*`).
//!
//! Matching semantics, chosen to fail closed:
//! - no scheme: `http` and `https` match; otherwise only the given scheme;
//! - no port: any port; otherwise only that port (default ports count, so
//!   `example.com:443` matches `https://example.com/`);
//! - `*.example.com` needs at least one extra label: never `example.com`,
//!   never `evilexample.com`;
//! - `/api/*` matches paths starting with `/api/` (not `/api`, not `/apix`);
//! - `/api` matches `/api` and `/api/` only: a single trailing slash names
//!   the same resource on practically every server, anything longer does not.
//!
//! Paths are compared against the URL's serialised (percent-encoded, dot-
//! segment-resolved) path, which is what the request will actually carry.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::kernel::types::DomainError;

const FIELD: &str = "allowed_hosts";
const MAX_HOST_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
/// Upper bound on `allowed_hosts` entries per credential.
pub const MAX_ALLOWED_HOSTS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(&self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostRule {
    /// Lowercase DNS name without trailing dot.
    Exact(String),
    /// The lowercase suffix after `*.`.
    Wildcard(String),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PathRule {
    Any,
    /// Stored with its trailing `/`, i.e. `/api/` for `/api/*`.
    Prefix(String),
    Exact(String),
}

/// One validated `allowed_hosts` entry.
///
/// Equality is on the normalised form, so `Example.COM.` and `example.com`
/// are the same pattern.
#[derive(Debug, Clone)]
pub struct HostPattern {
    normalised: String,
    scheme: Option<Scheme>,
    host: HostRule,
    port: Option<u16>,
    path: PathRule,
}

impl PartialEq for HostPattern {
    fn eq(&self, other: &Self) -> bool {
        self.normalised == other.normalised
    }
}

impl Eq for HostPattern {}

impl std::hash::Hash for HostPattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.normalised.hash(state);
    }
}

fn invalid(pattern: &str, why: &str) -> DomainError {
    DomainError::new(
        FIELD,
        format!("allowed_hosts entry {pattern:?} is invalid: {why}"),
    )
}

impl HostPattern {
    /// Parses one `allowed_hosts` entry (surrounding whitespace is ignored).
    pub fn parse(input: &str) -> Result<HostPattern, DomainError> {
        let s = input.trim();
        let bad = |why: &str| invalid(s, why);
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace or control characters"));
        }
        if s.contains('?') || s.contains('#') {
            return Err(bad("query strings and fragments are not allowed"));
        }

        let (scheme, rest) = match s.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = match scheme.to_ascii_lowercase().as_str() {
                    "http" => Scheme::Http,
                    "https" => Scheme::Https,
                    _ => return Err(bad("the scheme must be http or https")),
                };
                (Some(scheme), rest)
            }
            None => (None, s),
        };

        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        if authority.contains('@') {
            return Err(bad("user names and passwords are not allowed"));
        }

        let (host, port) = parse_authority(authority).map_err(&bad)?;
        let path = match path {
            None => PathRule::Any,
            Some(p) => parse_path(p).map_err(&bad)?,
        };

        let mut normalised = String::new();
        if let Some(scheme) = &scheme {
            normalised.push_str(scheme.as_str());
            normalised.push_str("://");
        }
        match &host {
            HostRule::Exact(h) => normalised.push_str(h),
            HostRule::Wildcard(h) => {
                normalised.push_str("*.");
                normalised.push_str(h);
            }
            HostRule::Ipv4(ip) => normalised.push_str(&ip.to_string()),
            HostRule::Ipv6(ip) => normalised.push_str(&format!("[{ip}]")),
        }
        if let Some(port) = port {
            normalised.push_str(&format!(":{port}"));
        }
        match &path {
            PathRule::Any => {}
            PathRule::Prefix(p) => {
                normalised.push_str(p);
                normalised.push('*');
            }
            PathRule::Exact(p) => normalised.push_str(p),
        }

        Ok(HostPattern {
            normalised,
            scheme,
            host,
            port,
            path,
        })
    }

    /// The normalised pattern text (lowercase host, no trailing dot).
    pub fn as_str(&self) -> &str {
        &self.normalised
    }

    /// Whether a credential limited to this pattern may be sent to `url`.
    pub fn matches(&self, url: &url::Url) -> bool {
        let scheme_ok = match &self.scheme {
            Some(s) => url.scheme() == s.as_str(),
            None => matches!(url.scheme(), "http" | "https"),
        };
        if !scheme_ok {
            return false;
        }
        if let Some(port) = self.port
            && url.port_or_known_default() != Some(port)
        {
            return false;
        }
        let host_ok = match (&self.host, url.host()) {
            (HostRule::Exact(want), Some(url::Host::Domain(got))) => {
                normalise_url_domain(got) == *want
            }
            (HostRule::Wildcard(suffix), Some(url::Host::Domain(got))) => {
                let got = normalise_url_domain(got);
                // The remainder must be one or more whole labels, so the
                // suffix has to start right after a '.'.
                got.strip_suffix(suffix.as_str())
                    .and_then(|rest| rest.strip_suffix('.'))
                    .is_some_and(|labels| !labels.is_empty() && !labels.ends_with('.'))
            }
            (HostRule::Ipv4(want), Some(url::Host::Ipv4(got))) => *want == got,
            (HostRule::Ipv6(want), Some(url::Host::Ipv6(got))) => *want == got,
            _ => false,
        };
        if !host_ok {
            return false;
        }
        let path = url.path();
        match &self.path {
            PathRule::Any => true,
            PathRule::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PathRule::Exact(exact) => {
                path == exact || path.strip_suffix('/') == Some(exact.as_str())
            }
        }
    }
}

/// URL hosts are already lowercased by the `url` crate for http(s); the
/// trailing dot of a fully-qualified name is dropped to match the pattern's
/// normal form.
fn normalise_url_domain(domain: &str) -> String {
    domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase()
}

fn parse_authority(authority: &str) -> Result<(HostRule, Option<u16>), &'static str> {
    if authority.is_empty() {
        return Err("it has no host");
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address must be closed with ']'")?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| "invalid IPv6 address")?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("unexpected text after the IPv6 address")?,
            ),
        };
        (HostRule::Ipv6(ip), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        (parse_host(host)?, port)
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    Ok((host, port))
}

fn parse_port(p: &str) -> Result<u16, &'static str> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port must be a number from 1 to 65535");
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err("the port must be a number from 1 to 65535"),
        Ok(port) => Ok(port),
    }
}

fn parse_host(host: &str) -> Result<HostRule, &'static str> {
    let lower = host.to_ascii_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower);
    if lower.is_empty() {
        return Err("it has no host");
    }
    if let Some(suffix) = lower.strip_prefix("*.") {
        if suffix.contains('*') {
            return Err("'*' may only appear once, as the whole leftmost label");
        }
        if suffix.parse::<Ipv4Addr>().is_ok() {
            return Err("IP addresses cannot be wildcarded");
        }
        check_domain(suffix)?;
        if suffix.split('.').count() < 2 {
            return Err("a wildcard must be followed by at least two labels, e.g. *.example.com");
        }
        if lower.len() > MAX_HOST_LEN {
            return Err("the host is longer than 253 characters");
        }
        return Ok(HostRule::Wildcard(suffix.to_owned()));
    }
    if lower.contains('*') {
        return Err("'*' may only appear as the whole leftmost label followed by '.'");
    }
    if let Ok(ip) = lower.parse::<Ipv4Addr>() {
        return Ok(HostRule::Ipv4(ip));
    }
    check_domain(lower)?;
    Ok(HostRule::Exact(lower.to_owned()))
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.len() > MAX_HOST_LEN {
        return Err("the host is longer than 253 characters");
    }
    let mut last = "";
    for label in domain.split('.') {
        if label.is_empty() {
            return Err("the host has an empty label");
        }
        if label.len() > MAX_LABEL_LEN {
            return Err("a host label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("host labels may only contain letters, digits and '-'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("host labels must not start or end with '-'");
        }
        last = label;
    }
    // URL parsers read a host whose last label is numeric (or hex) as an
    // IPv4 address in shorthand (`1.2.3` is 1.2.0.3); such a pattern would
    // never match the way it reads, so refuse it.
    if last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x") {
        return Err("the host looks like an IP address but is not a valid IPv4 address");
    }
    Ok(())
}

fn parse_path(path: &str) -> Result<PathRule, &'static str> {
    let (body, prefix) = match path.strip_suffix("/*") {
        Some(body) => (body, true),
        None => (path, false),
    };
    if body.contains('*') {
        return Err("'*' is only allowed as the last path segment, e.g. /api/*");
    }
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or("invalid percent-encoding")?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err("invalid percent-encoding");
            }
            i += 3;
            continue;
        }
        let allowed = b.is_ascii_alphanumeric() || b"-._~!$&'()+,;=:@/".contains(&b);
        if !allowed {
            return Err("the path contains characters that must be percent-encoded");
        }
        i += 1;
    }
    // URLs have `.`/`..` segments resolved before matching, so a pattern
    // containing them could never match as written.
    if body.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("the path must not contain '.' or '..' segments");
    }
    if prefix {
        Ok(PathRule::Prefix(format!("{body}/")))
    } else {
        Ok(PathRule::Exact(body.to_owned()))
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for HostPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        HostPattern::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Parses a whole `allowed_hosts` list: at most 100 entries, duplicates
/// (after normalisation) dropped, first occurrence order kept.
pub fn parse_allowed_hosts(items: &[String]) -> Result<Vec<HostPattern>, DomainError> {
    if items.len() > MAX_ALLOWED_HOSTS {
        return Err(DomainError::new(
            FIELD,
            format!("allowed_hosts may contain at most {MAX_ALLOWED_HOSTS} entries"),
        ));
    }
    let mut out: Vec<HostPattern> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let pattern = HostPattern::parse(item).map_err(|e| {
            DomainError::new(FIELD, format!("allowed_hosts[{index}]: {}", e.message))
        })?;
        if !out.contains(&pattern) {
            out.push(pattern);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    fn m(pattern: &str, target: &str) -> bool {
        HostPattern::parse(pattern).unwrap().matches(&url(target))
    }

    #[test]
    fn match_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("example.com", "https://example.com/", true),
            ("example.com", "http://example.com:8080/x", true),
            ("example.com", "https://EXAMPLE.com/", true),
            ("example.com", "https://example.com./", true),
            ("Example.COM.", "https://example.com/", true),
            ("example.com", "https://evilexample.com/", false),
            ("example.com", "https://example.com.evil.org/", false),
            ("example.com", "https://a.example.com/", false),
            ("example.com", "ftp://example.com/", false),
            ("example.com", "ws://example.com/", false),
            ("api.example.com", "https://api.example.com/v1", true),
            ("api.example.com", "https://example.com/", false),
            ("*.example.com", "https://a.example.com/", true),
            ("*.example.com", "https://a.b.example.com/", true),
            ("*.example.com", "https://A.Example.Com/", true),
            ("*.example.com", "https://example.com/", false),
            ("*.example.com", "https://evilexample.com/", false),
            ("*.example.com", "https://a.evilexample.com/", false),
            ("*.example.com", "https://a.example.com.evil.org/", false),
            ("example.com:8443", "https://example.com:8443/", true),
            ("example.com:8443", "https://example.com/", false),
            ("example.com:8443", "https://example.com:8444/", false),
            ("example.com:443", "https://example.com/", true),
            ("example.com:443", "http://example.com/", false),
            ("https://example.com", "https://example.com/", true),
            ("https://example.com", "http://example.com/", false),
            ("http://example.com", "http://example.com/", true),
            ("http://example.com", "https://example.com/", false),
            ("example.com/api/*", "https://example.com/api/", true),
            ("example.com/api/*", "https://example.com/api/v1/x", true),
            ("example.com/api/*", "https://example.com/api", false),
            ("example.com/api/*", "https://example.com/apix", false),
            ("example.com/api/*", "https://example.com/", false),
            (
                "example.com/api/*",
                "https://example.com/api/../admin",
                false,
            ),
            ("example.com/api", "https://example.com/api", true),
            ("example.com/api", "https://example.com/api/", true),
            ("example.com/api", "https://example.com/api?x=1", true),
            ("example.com/api", "https://example.com/api/x", false),
            ("example.com/api", "https://example.com/apix", false),
            (
                "https://example.com/*",
                "https://example.com/anything/here",
                true,
            ),
            ("https://example.com/*", "https://example.com/", true),
            ("https://example.com/*", "http://example.com/", false),
            ("127.0.0.1:8080", "http://127.0.0.1:8080/", true),
            ("127.0.0.1:8080", "http://127.0.0.1:8081/", false),
            ("127.0.0.1", "http://127.0.0.1:9/", true),
            ("127.0.0.1", "http://127.0.0.2/", false),
            ("[::1]:8080", "http://[::1]:8080/", true),
            ("[::1]", "http://[0:0::1]/", true),
            ("[::1]", "http://127.0.0.1/", false),
            ("example.com", "http://127.0.0.1/", false),
        ];
        for (pattern, target, want) in cases {
            assert_eq!(m(pattern, target), *want, "{pattern} vs {target}");
        }
    }

    #[test]
    fn normalised_forms() {
        for (input, norm) in [
            ("Example.COM.", "example.com"),
            ("  example.com  ", "example.com"),
            (
                "HTTPS://Example.com:0443/Api/*",
                "https://example.com:443/Api/*",
            ),
            ("*.Example.com", "*.example.com"),
            ("[0:0::1]:80", "[::1]:80"),
            ("127.0.0.1:8080", "127.0.0.1:8080"),
            ("example.com/", "example.com/"),
        ] {
            assert_eq!(HostPattern::parse(input).unwrap().as_str(), norm, "{input}");
        }
    }

    #[test]
    fn rejections() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_host = format!("{}com", "abcdefghi.".repeat(26));
        for bad in [
            "",
            "   ",
            "*",
            "*.",
            "*example.com",
            "a.*.com",
            "**.x.com",
            "*.*.x.com",
            "*.com",
            "ex*ample.com",
            "exa mple.com",
            "user@example.com",
            "user:pw@example.com",
            "example.com?x=1",
            "example.com#frag",
            "ftp://example.com",
            "://example.com",
            "example.com:",
            "example.com:0",
            "example.com:65536",
            "example.com:abc",
            "example.com:80:80",
            "-example.com",
            "example-.com",
            "exa_mple.com",
            "exämple.com",
            "a..b.com",
            ".example.com",
            &long_label,
            &long_host,
            "1.2.3",
            "256.1.1.1",
            "*.1.2.3.4",
            "example.com/api*",
            "example.com/*/x",
            "example.com/a b",
            "example.com/a/../b",
            "example.com/%zz",
            "[::1",
            "[zz]",
            "[::1]x",
            "https://",
            "https:///path",
        ] {
            let err = HostPattern::parse(bad).unwrap_err();
            assert_eq!(err.field, "allowed_hosts");
            assert!(
                err.message.contains(&format!("{:?}", bad.trim())),
                "{bad}: {}",
                err.message
            );
        }
    }

    #[test]
    fn allowed_hosts_list() {
        let items: Vec<String> = [
            "example.com",
            "EXAMPLE.com.",
            "*.example.com",
            "example.com",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let parsed = parse_allowed_hosts(&items).unwrap();
        let strs: Vec<&str> = parsed.iter().map(HostPattern::as_str).collect();
        assert_eq!(strs, ["example.com", "*.example.com"]);

        let bad = vec!["ok.com".to_string(), "*.com".to_string()];
        let err = parse_allowed_hosts(&bad).unwrap_err();
        assert_eq!(err.field, "allowed_hosts");
        assert!(
            err.message.starts_with("allowed_hosts[1]:"),
            "{}",
            err.message
        );
        assert!(err.message.contains("\"*.com\""));

        let many: Vec<String> = (0..101).map(|i| format!("h{i}.example.com")).collect();
        assert!(parse_allowed_hosts(&many).is_err());
        assert_eq!(parse_allowed_hosts(&many[..100]).unwrap().len(), 100);
        assert!(parse_allowed_hosts(&[]).unwrap().is_empty());
    }

    #[test]
    fn serde_uses_normalised_form() {
        let p = HostPattern::parse("API.Example.com").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"api.example.com\"");
        let back: HostPattern = serde_json::from_str("\"api.example.com\"").unwrap();
        assert_eq!(back, p);
        assert!(serde_json::from_str::<HostPattern>("\"*.com\"").is_err());
    }

    // No "--": IDNA (and so the URL parser) refuses labels like "ab--cd", which would make
    // the generated URL, not the pattern, fail.
    const LABEL: &str = "[a-z0-9]{1,4}(-[a-z0-9]{1,4}){0,2}";

    fn domain() -> impl Strategy<Value = String> {
        (prop::collection::vec(LABEL, 1..4), "[a-z]{2,6}")
            .prop_map(|(labels, tld)| format!("{}.{tld}", labels.join(".")))
    }

    fn pattern_text() -> impl Strategy<Value = String> {
        (
            prop::option::of(prop_oneof![
                Just("http://"),
                Just("https://"),
                Just("HTTPS://")
            ]),
            any::<bool>(),
            domain(),
            any::<bool>(),
            prop::option::of(1u16..),
            prop::option::of("(/[a-zA-Z0-9_~-]{1,6}){0,3}(/\\*)?"),
        )
            .prop_map(|(scheme, wild, domain, upper, port, path)| {
                let mut s = scheme.unwrap_or("").to_string();
                if wild {
                    s.push_str("*.");
                }
                s.push_str(&if upper { domain.to_uppercase() } else { domain });
                if let Some(port) = port {
                    s.push_str(&format!(":{port}"));
                }
                if let Some(path) = path {
                    s.push_str(if path.is_empty() { "/" } else { &path });
                }
                s
            })
    }

    proptest! {
        #[test]
        fn wildcard_needs_a_label_boundary(label in LABEL, domain in domain()) {
            let p = HostPattern::parse(&format!("*.{domain}")).unwrap();
            let target = url(&format!("https://{label}.{domain}/"));
            prop_assert!(p.matches(&target));
            let target = url(&format!("http://x.{label}.{domain}:81/a"));
            prop_assert!(p.matches(&target));
            let target = url(&format!("https://{label}{domain}/"));
            prop_assert!(!p.matches(&target));
            let target = url(&format!("https://{domain}/"));
            prop_assert!(!p.matches(&target));
            let target = url(&format!("https://{label}.{domain}.evil.org/"));
            prop_assert!(!p.matches(&target));
        }

        #[test]
        fn exact_host_matches_only_itself(label in LABEL, domain in domain()) {
            let p = HostPattern::parse(&domain).unwrap();
            let target = url(&format!("https://{domain}/"));
            prop_assert!(p.matches(&target));
            let target = url(&format!("https://{}/", domain.to_uppercase()));
            prop_assert!(p.matches(&target));
            let target = url(&format!("https://{label}.{domain}/"));
            prop_assert!(!p.matches(&target));
            let target = url(&format!("https://{label}{domain}/"));
            prop_assert!(!p.matches(&target));
        }

        #[test]
        fn round_trip(text in pattern_text()) {
            let p = HostPattern::parse(&text).unwrap();
            let again = HostPattern::parse(p.as_str()).unwrap();
            prop_assert_eq!(again.as_str(), p.as_str());
            prop_assert_eq!(&again.host, &p.host);
            prop_assert_eq!(&again.path, &p.path);
            prop_assert_eq!(again.port, p.port);
            prop_assert_eq!(&again.scheme, &p.scheme);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,60}") {
            if let Ok(p) = HostPattern::parse(&s) {
                prop_assert_eq!(HostPattern::parse(p.as_str()).unwrap(), p);
            }
        }

        #[test]
        fn parse_never_panics_on_pattern_like_input(s in "[a-zA-Z0-9.*:/\\[\\]@?#%_-]{0,40}") {
            if let Ok(p) = HostPattern::parse(&s) {
                let again = HostPattern::parse(p.as_str()).unwrap();
                prop_assert_eq!(again.as_str(), p.as_str());
            }
        }

        #[test]
        fn matches_never_panics(text in pattern_text(), target in "https?://[a-z0-9.-]{1,20}(:[0-9]{1,5})?(/[a-z0-9./-]{0,12})?") {
            let p = HostPattern::parse(&text).unwrap();
            if let Ok(u) = url::Url::parse(&target) {
                let _ = p.matches(&u);
            }
        }
    }
}

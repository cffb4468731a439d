//! Commerce Layer's vocabulary: application kinds, modes, and the scope grammar of its
//! access tokens.

use std::fmt::Write as _;

/// The kinds of api credential the Provisioning API creates. Besides the three core kinds,
/// `custom: true` credentials fork one of Commerce Layer's hosted dashboard apps.
pub const CORE_KINDS: &[&str] = &["sales_channel", "integration", "webapp"];
pub const FORK_KINDS: &[&str] = &[
    "bundles",
    "customers",
    "exports",
    "gift_cards",
    "imports",
    "inventory",
    "orders",
    "price_lists",
    "promotions",
    "resources",
    "returns",
    "shipments",
    "sku_lists",
    "skus",
    "stock_transfers",
    "subscriptions",
    "tags",
    "webhooks",
];
/// A provisioning client: made with a native route, its tokens act with the role it was given
/// on the Provisioning API (scope `provisioning-api`).
pub const USER_KIND: &str = "user";

pub const SALES_CHANNEL: &str = "sales_channel";
pub const INTEGRATION: &str = "integration";
pub const WEBAPP: &str = "webapp";

/// Access-token lifetimes an api credential may set, in seconds.
pub const MIN_EXPIRES_IN: i64 = 7_200;
pub const MAX_EXPIRES_IN: i64 = 31_536_000;

/// The default access-token lifetime of a kind: four hours for sales channels, two for
/// every other kind.
pub fn default_expires_in(kind: &str) -> i64 {
    if kind == SALES_CHANNEL { 14_400 } else { 7_200 }
}

/// Sales channels are public clients (their id is shipped in storefronts); every other kind
/// keeps its secret.
pub fn is_confidential(kind: &str) -> bool {
    kind != SALES_CHANNEL
}

/// A URL a browser is sent to (a redirect URI, a login page): absolute, https — or http on a
/// loopback host, for development — and without a fragment (RFC 6749 §3.1.2). The reason
/// when it is not.
pub fn check_browser_url(raw: &str) -> Result<(), &'static str> {
    let url = url::Url::parse(raw).map_err(|_| "must be an absolute URL")?;
    let loopback = matches!(
        url.host(),
        Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
    );
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must be an https URL (http only on a loopback host)"),
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment");
    }
    Ok(())
}

/// What an api credential's clients may ask for unless it says otherwise.
pub const DEFAULT_SCOPES: &str = "market:all";
/// The scope of a provisioning token.
pub const PROVISIONING_SCOPE: &str = "provisioning-api";
/// Items in one scope string.
const MAX_SCOPE_ITEMS: usize = 20;

/// Why a scope was refused (the `error_description` of `invalid_scope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeError(pub String);

/// A space-separated scope in Commerce Layer's grammar: `market:all`, or
/// `{market|stock_location|store}:{id|code}:{value}`; or `provisioning-api` alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(Vec<String>);

impl Scope {
    pub fn parse(raw: &str) -> Result<Self, ScopeError> {
        let items: Vec<&str> = raw.split_ascii_whitespace().collect();
        if items.is_empty() {
            return Err(ScopeError("the scope is empty".into()));
        }
        if items.len() > MAX_SCOPE_ITEMS {
            return Err(ScopeError(format!(
                "a scope has at most {MAX_SCOPE_ITEMS} items"
            )));
        }
        if items.contains(&PROVISIONING_SCOPE) {
            return if items.len() == 1 {
                Ok(Self(vec![PROVISIONING_SCOPE.to_owned()]))
            } else {
                Err(ScopeError(
                    "provisioning-api cannot be combined with other scopes".into(),
                ))
            };
        }
        let mut out: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            check_item(item)?;
            if !out.iter().any(|i| i == item) {
                out.push(item.to_owned());
            }
        }
        if out.iter().any(|i| i.starts_with("stock_location:"))
            && !out.iter().any(|i| i.starts_with("market:"))
        {
            return Err(ScopeError(
                "a stock_location scope needs its market in the scope too".into(),
            ));
        }
        Ok(Self(out))
    }

    /// Whether every item of `self` is granted by `allowed` (`market:all` grants every
    /// market, stock location and store; `provisioning-api` only itself).
    pub fn within(&self, allowed: &Scope) -> bool {
        self.0.iter().all(|item| {
            allowed.0.contains(item)
                || (item != PROVISIONING_SCOPE && allowed.0.iter().any(|a| a == "market:all"))
        })
    }

    pub fn is_provisioning(&self) -> bool {
        self.0.len() == 1 && self.0[0] == PROVISIONING_SCOPE
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            f.write_str(item)?;
        }
        Ok(())
    }
}

fn check_item(item: &str) -> Result<(), ScopeError> {
    let quoted = || item.chars().take(64).collect::<String>();
    if item == "market:all" {
        return Ok(());
    }
    let mut parts = item.splitn(3, ':');
    let (Some(resource), Some(by), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ScopeError(format!(
            "{:?} is not a scope (use market:all, market:id:…, market:code:…, stock_location:…, store:…)",
            quoted()
        )));
    };
    let known = matches!(resource, "market" | "stock_location" | "store");
    let value_ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !known || !matches!(by, "id" | "code") || !value_ok {
        return Err(ScopeError(format!("{:?} is not a valid scope", quoted())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_grammar() {
        let ok = |s: &str| Scope::parse(s).map(|s| s.to_string());
        assert_eq!(ok("market:all").unwrap(), "market:all");
        assert_eq!(
            ok(" market:id:xYZ  stock_location:code:eu-1 market:id:xYZ").unwrap(),
            "market:id:xYZ stock_location:code:eu-1"
        );
        assert_eq!(ok("provisioning-api").unwrap(), "provisioning-api");
        for bad in [
            "",
            "market:1234",
            "market:name:x",
            "shop:id:x",
            "market:id:",
            "market:id:a b",
            "stock_location:id:x",
            "provisioning-api market:all",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Scope::parse(&"market:all ".repeat(21)).is_err());
    }

    #[test]
    fn market_all_grants_every_market_scope_but_not_provisioning() {
        let all = Scope::parse("market:all").unwrap();
        let one = Scope::parse("market:id:a").unwrap();
        assert!(
            Scope::parse("market:code:eu store:id:s")
                .unwrap()
                .within(&all)
        );
        assert!(one.within(&one));
        assert!(!all.within(&one));
        assert!(!Scope::parse("market:id:b").unwrap().within(&one));
        assert!(!Scope::parse("provisioning-api").unwrap().within(&all));
    }
}

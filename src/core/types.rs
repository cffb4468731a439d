//! Domain value types for credentials: names, slugs, JWT algorithms and
//! signing keys, outbound URLs, TTLs, read-access and credential modes.
//!
//! Each type is built only through a `parse` constructor that returns a
//! [`DomainError`], so a value of one of these types is valid by
//! construction. Nothing here knows about HTTP.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a piece of user input was rejected, naming the API field it came from.
///
/// `message` is shown to the user as-is, so it must never contain secret
/// input such as private keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DomainError {
    /// The API field name, e.g. `"name"` or `"http_request_options.url"`.
    pub field: &'static str,
    /// A user-facing explanation.
    pub message: String,
}

impl DomainError {
    /// Builds an error for `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Serialises through `as_str` and deserialises through `parse`, so the wire
/// format and the validation rules cannot drift apart.
macro_rules! string_serde {
    ($ty:ty, $parse:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                let parse: fn(&str) -> Result<$ty, DomainError> = $parse;
                parse(&raw).map_err(serde::de::Error::custom)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Declares a closed set of wire strings as an enum with `parse`, `as_str`,
/// `ALL`, Display and serde.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident, field = $field:literal, { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Parses the exact (case-sensitive) wire string.
            pub fn parse(s: &str) -> Result<Self, DomainError> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(DomainError::new(
                        $field,
                        format!(
                            "{} must be one of: {}",
                            $field,
                            [$($wire),+].join(", ")
                        ),
                    )),
                }
            }

            /// The wire string.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }

        string_serde!($name, $name::parse);
    };
}

const MAX_SLUG_LEN: usize = 255;
const MAX_NAME_CHARS: usize = 255;

/// A credential's slug: the snake_case form of its name, unique per team.
///
/// Always matches `[a-z0-9]+(_[a-z0-9]+)*` and is at most 255 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);

impl Slug {
    /// Derives the slug from a credential name the way Tines does: ASCII
    /// letters and digits are kept (lowercased), every run of anything else
    /// becomes one `_`, and leading/trailing `_` are dropped.
    ///
    /// Non-ASCII letters are treated as separators rather than
    /// transliterated, so the result never depends on locale tables.
    /// Output longer than 255 bytes is cut to 255 (names are capped at 255
    /// characters anyway, so this only matters for callers that skip
    /// [`Name::parse`]).
    pub fn from_name(name: &str) -> Result<Slug, DomainError> {
        let mut out = String::with_capacity(name.len());
        let mut pending_sep = false;
        for c in name.chars() {
            if c.is_ascii_alphanumeric() {
                if pending_sep && !out.is_empty() {
                    out.push('_');
                }
                pending_sep = false;
                out.push(c.to_ascii_lowercase());
            } else {
                pending_sep = true;
            }
        }
        if out.len() > MAX_SLUG_LEN {
            out.truncate(MAX_SLUG_LEN);
            // Truncation may leave a dangling separator.
            while out.ends_with('_') {
                out.pop();
            }
        }
        if out.is_empty() {
            return Err(DomainError::new(
                "name",
                "name must contain at least one letter or digit",
            ));
        }
        Ok(Slug(out))
    }

    /// Accepts only an already well-formed slug (as sent in
    /// `shared_team_slugs`); does not normalise.
    pub fn parse(s: &str) -> Result<Slug, DomainError> {
        let well_formed = !s.is_empty()
            && s.len() <= MAX_SLUG_LEN
            && s.split('_').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if well_formed {
            Ok(Slug(s.to_owned()))
        } else {
            Err(DomainError::new(
                "slug",
                format!(
                    "slug {s:?} is invalid: use lowercase letters, digits and single underscores \
                     (at most {MAX_SLUG_LEN} characters)"
                ),
            ))
        }
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_serde!(Slug, Slug::parse);

/// A credential's display name: trimmed, 1..=255 characters, no control
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    /// Trims surrounding whitespace and checks length and characters.
    pub fn parse(s: &str) -> Result<Name, DomainError> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(DomainError::new("name", "name must not be empty"));
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(DomainError::new(
                "name",
                format!("name must be at most {MAX_NAME_CHARS} characters"),
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(DomainError::new(
                "name",
                "name must not contain control characters",
            ));
        }
        Ok(Name(trimmed.to_owned()))
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The slug this name implies.
    pub fn slug(&self) -> Result<Slug, DomainError> {
        Slug::from_name(&self.0)
    }
}

string_serde!(Name, Name::parse);

/// A Sunshine display name (apps and keys): 1..=100 characters, not blank, no control
/// characters. Kept as given (Sunshine echoes it back unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(s: &str) -> Result<DisplayName, DomainError> {
        const FIELD: &str = "displayName";
        if s.trim().is_empty() {
            return Err(DomainError::new(FIELD, "displayName must not be empty"));
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(DomainError::new(
                FIELD,
                format!("displayName must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(DomainError::new(
                FIELD,
                "displayName must not contain control characters",
            ));
        }
        Ok(DisplayName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_serde!(DisplayName, DisplayName::parse);

wire_enum!(
    /// What a Sunshine API key may reach: the whole organization, one app, or one integration.
    KeyScope, field = "scope", {
        Account = "account",
        App = "app",
        Integration = "integration",
    }
);

impl KeyScope {
    /// The prefix of this scope's key ids (`act_`, `app_`, `int_`), followed by 24 hex digits.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Self::Account => "act_",
            Self::App => "app_",
            Self::Integration => "int_",
        }
    }

    /// The scope a key id claims, if it has the shape of one (a cheap check before any lookup).
    pub fn of_key_id(id: &str) -> Option<KeyScope> {
        let scope = Self::ALL
            .iter()
            .copied()
            .find(|s| id.starts_with(s.id_prefix()))?;
        let hex = &id[4..];
        (hex.len() == 24 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then_some(scope)
    }
}

wire_enum!(
    /// The algorithm a JWT-mode credential signs with.
    JwtAlgorithm, field = "jwt_algorithm", {
        HS256 = "HS256",
        HS384 = "HS384",
        HS512 = "HS512",
        RS256 = "RS256",
        RS384 = "RS384",
        RS512 = "RS512",
        PS256 = "PS256",
        PS384 = "PS384",
        PS512 = "PS512",
        ES256 = "ES256",
        ES384 = "ES384",
        EdDSA = "EdDSA",
    }
);

impl JwtAlgorithm {
    /// The matching `jsonwebtoken` algorithm.
    pub fn to_jsonwebtoken(&self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            JwtAlgorithm::HS256 => A::HS256,
            JwtAlgorithm::HS384 => A::HS384,
            JwtAlgorithm::HS512 => A::HS512,
            JwtAlgorithm::RS256 => A::RS256,
            JwtAlgorithm::RS384 => A::RS384,
            JwtAlgorithm::RS512 => A::RS512,
            JwtAlgorithm::PS256 => A::PS256,
            JwtAlgorithm::PS384 => A::PS384,
            JwtAlgorithm::PS512 => A::PS512,
            JwtAlgorithm::ES256 => A::ES256,
            JwtAlgorithm::ES384 => A::ES384,
            JwtAlgorithm::EdDSA => A::EdDSA,
        }
    }

    /// What kind of key this algorithm needs, in words for error messages.
    fn key_description(&self) -> &'static str {
        match self {
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512 => "HMAC secret",
            JwtAlgorithm::RS256
            | JwtAlgorithm::RS384
            | JwtAlgorithm::RS512
            | JwtAlgorithm::PS256
            | JwtAlgorithm::PS384
            | JwtAlgorithm::PS512 => "RSA private key",
            JwtAlgorithm::ES256 => "P-256 EC private key (PKCS#8)",
            JwtAlgorithm::ES384 => "P-384 EC private key (PKCS#8)",
            JwtAlgorithm::EdDSA => "Ed25519 private key (PKCS#8)",
        }
    }
}

/// Makes the aws-lc-rs backend jsonwebtoken's process-wide crypto provider.
///
/// With only the `aws_lc_rs` feature enabled jsonwebtoken picks this
/// provider by itself, but if another crate in the graph ever turns on
/// `rust_crypto` too, jsonwebtoken can no longer choose and panics on first
/// use. Installing explicitly keeps signing working in that case. Safe to call
/// any number of times; if a provider is already installed it is kept.
pub fn install_jwt_provider() {
    // An `Err` only means a provider is already in place, which is fine.
    let _already_installed = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

/// Checks that `key` can actually sign JWTs with `alg`, by signing a small
/// throwaway token.
///
/// Building an `EncodingKey` only checks the PEM envelope; the curve, key
/// size and key/algorithm pairing are only checked when signing, so signing
/// is the only trustworthy test. Error messages never include the key.
pub fn check_jwt_signing_key(alg: JwtAlgorithm, key: &str) -> Result<(), DomainError> {
    use jsonwebtoken::EncodingKey;

    const FIELD: &str = "jwt_private_key";
    install_jwt_provider();

    if key.trim().is_empty() {
        return Err(DomainError::new(
            FIELD,
            format!("{FIELD} must not be empty for {}", alg.as_str()),
        ));
    }

    let invalid = || {
        let mut message = format!(
            "{FIELD} is not a valid {} in PEM format for {}",
            alg.key_description(),
            alg.as_str()
        );
        if matches!(alg, JwtAlgorithm::ES256 | JwtAlgorithm::ES384)
            && key.contains("BEGIN EC PRIVATE KEY")
        {
            message.push_str(
                "; SEC1 (BEGIN EC PRIVATE KEY) keys must be converted to PKCS#8 \
                 (BEGIN PRIVATE KEY), e.g. with `openssl pkcs8 -topk8 -nocrypt`",
            );
        }
        DomainError::new(FIELD, message)
    };

    let encoding_key = match alg {
        JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512 => {
            EncodingKey::from_secret(key.as_bytes())
        }
        JwtAlgorithm::RS256
        | JwtAlgorithm::RS384
        | JwtAlgorithm::RS512
        | JwtAlgorithm::PS256
        | JwtAlgorithm::PS384
        | JwtAlgorithm::PS512 => {
            EncodingKey::from_rsa_pem(key.as_bytes()).map_err(|_| invalid())?
        }
        JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => {
            EncodingKey::from_ec_pem(key.as_bytes()).map_err(|_| invalid())?
        }
        JwtAlgorithm::EdDSA => EncodingKey::from_ed_pem(key.as_bytes()).map_err(|_| invalid())?,
    };

    let header = jsonwebtoken::Header::new(alg.to_jsonwebtoken());
    let claims = serde_json::json!({ "sub": "latchkey-key-check" });
    match jsonwebtoken::encode(&header, &claims, &encoding_key) {
        Ok(_) => Ok(()),
        Err(_) if rsa_key_too_small(alg, &encoding_key) => Err(DomainError::new(
            FIELD,
            format!(
                "{FIELD} is an RSA key smaller than 2048 bits; {} needs at least 2048 bits",
                alg.as_str()
            ),
        )),
        Err(_) => Err(invalid()),
    }
}

/// Distinguishes "too small" from other RSA failures so the user gets an
/// actionable message; aws-lc-rs rejects RSA keys under 2048 bits.
fn rsa_key_too_small(alg: JwtAlgorithm, key: &jsonwebtoken::EncodingKey) -> bool {
    key.family() == jsonwebtoken::AlgorithmFamily::Rsa
        && alg.to_jsonwebtoken().family() == jsonwebtoken::AlgorithmFamily::Rsa
        && matches!(
            aws_lc_rs::signature::RsaKeyPair::from_der(key.as_bytes()),
            Err(e) if e.description_() == "TooSmall"
        )
}

/// An absolute `http` or `https` URL with a host.
///
/// Keeps the text as the user wrote it (minus surrounding whitespace) so
/// it round-trips through the API unchanged, alongside the parsed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    raw: String,
    url: url::Url,
}

impl HttpUrl {
    /// Parses `s`, reporting errors against `field`.
    pub fn parse(s: &str, field: &'static str) -> Result<HttpUrl, DomainError> {
        let trimmed = s.trim();
        let invalid = || DomainError::new(field, format!("{field} must be an http or https URL"));
        let url = url::Url::parse(trimmed).map_err(|_| invalid())?;
        let has_host = url.host_str().is_some_and(|h| !h.is_empty());
        if !matches!(url.scheme(), "http" | "https") || !has_host {
            return Err(invalid());
        }
        Ok(HttpUrl {
            raw: trimmed.to_owned(),
            url,
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The parsed URL.
    pub fn url(&self) -> &url::Url {
        &self.url
    }
}

impl Serialize for HttpUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long an HTTP-request-agent credential's fetched value is cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TtlSeconds(u32);

impl TtlSeconds {
    /// Smallest accepted TTL.
    pub const MIN: i64 = 1;
    /// Largest accepted TTL.
    pub const MAX: i64 = 120;

    /// Accepts 1..=120 seconds.
    pub fn parse(seconds: i64) -> Result<TtlSeconds, DomainError> {
        match u32::try_from(seconds) {
            Ok(s) if (Self::MIN..=Self::MAX).contains(&seconds) => Ok(TtlSeconds(s)),
            _ => Err(DomainError::new(
                "http_request_ttl",
                format!(
                    "http_request_ttl must be between {} and {} seconds",
                    Self::MIN,
                    Self::MAX
                ),
            )),
        }
    }

    /// The TTL in seconds.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The TTL as a duration.
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.0))
    }
}

wire_enum!(
    /// Which teams may read a credential.
    ReadAccess, field = "read_access", {
        Team = "TEAM",
        Global = "GLOBAL",
        SpecificTeams = "SPECIFIC_TEAMS",
    }
);

wire_enum!(
    /// The kind of credential.
    CredentialMode, field = "mode", {
        Text = "TEXT",
        Jwt = "JWT",
        Oauth = "OAUTH",
        Aws = "AWS",
        Mtls = "MTLS",
        HttpRequestAgent = "HTTP_REQUEST_AGENT",
        MultiRequest = "MULTI_REQUEST",
    }
);

/// Freshly generated private keys in PEM form, for tests anywhere in the
/// crate. Generated rather than checked in so no test depends on a key that
/// might be flagged or expire; RSA generation is slow, so keys are cached.
#[cfg(test)]
pub(crate) mod test_keys {
    use std::sync::OnceLock;

    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
        Ed25519KeyPair,
    };
    use base64::Engine;

    /// Wraps DER in a PEM envelope with 64-character lines.
    pub(crate) fn der_to_pem(label: &str, der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = format!("-----BEGIN {label}-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap());
            pem.push('\n');
        }
        pem.push_str(&format!("-----END {label}-----\n"));
        pem
    }

    /// A 2048-bit RSA key, PKCS#8.
    pub(crate) fn rsa_pem() -> &'static str {
        static KEY: OnceLock<String> = OnceLock::new();
        KEY.get_or_init(|| {
            let kp = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
            let der: Pkcs8V1Der = kp.as_der().unwrap();
            der_to_pem("PRIVATE KEY", der.as_ref())
        })
    }

    /// A P-256 key, PKCS#8.
    pub(crate) fn ec_p256_pem() -> &'static str {
        static KEY: OnceLock<String> = OnceLock::new();
        KEY.get_or_init(|| {
            let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
            der_to_pem("PRIVATE KEY", kp.to_pkcs8v1().unwrap().as_ref())
        })
    }

    /// A P-384 key, PKCS#8.
    pub(crate) fn ec_p384_pem() -> &'static str {
        static KEY: OnceLock<String> = OnceLock::new();
        KEY.get_or_init(|| {
            let kp = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
            der_to_pem("PRIVATE KEY", kp.to_pkcs8v1().unwrap().as_ref())
        })
    }

    /// An Ed25519 key, PKCS#8 v1.
    pub(crate) fn ed25519_pem() -> &'static str {
        static KEY: OnceLock<String> = OnceLock::new();
        KEY.get_or_init(|| {
            let kp = Ed25519KeyPair::generate().unwrap();
            der_to_pem("PRIVATE KEY", kp.to_pkcs8v1().unwrap().as_ref())
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::test_keys::*;
    use super::*;

    const FIXTURE_RSA_PKCS8: &str = include_str!("../../tests/fixtures/rsa.pem");
    const FIXTURE_RSA_PKCS1: &str = include_str!("../../tests/fixtures/rsa_pkcs1.pem");
    const FIXTURE_RSA_1024: &str = include_str!("../../tests/fixtures/rsa_1024.pem");
    const FIXTURE_EC_P256: &str = include_str!("../../tests/fixtures/ec_p256.pem");
    const FIXTURE_EC_P256_SEC1: &str = include_str!("../../tests/fixtures/ec_p256_sec1.pem");
    const FIXTURE_EC_P384: &str = include_str!("../../tests/fixtures/ec_p384.pem");
    const FIXTURE_ED25519: &str = include_str!("../../tests/fixtures/ed25519.pem");

    const RSA_ALGS: [JwtAlgorithm; 6] = [
        JwtAlgorithm::RS256,
        JwtAlgorithm::RS384,
        JwtAlgorithm::RS512,
        JwtAlgorithm::PS256,
        JwtAlgorithm::PS384,
        JwtAlgorithm::PS512,
    ];

    #[test]
    fn display_names() {
        assert_eq!(
            DisplayName::parse("My custom key").unwrap().as_str(),
            "My custom key"
        );
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        for bad in ["", "   ", "a\nb"] {
            assert_eq!(DisplayName::parse(bad).unwrap_err().field, "displayName");
        }
        assert!(DisplayName::parse(&"x".repeat(101)).is_err());
    }

    #[test]
    fn key_ids_name_their_scope() {
        let hex = "5e4b0f225aca01092928f917";
        assert_eq!(
            KeyScope::of_key_id(&format!("int_{hex}")),
            Some(KeyScope::Integration)
        );
        assert_eq!(
            KeyScope::of_key_id(&format!("app_{hex}")),
            Some(KeyScope::App)
        );
        assert_eq!(
            KeyScope::of_key_id(&format!("act_{hex}")),
            Some(KeyScope::Account)
        );
        for bad in [
            "int_",
            "xyz_5e4b0f225aca01092928f917",
            "app_5E4B0F225ACA01092928F917",
            "app_5e4b0f225aca01092928f91",
        ] {
            assert_eq!(KeyScope::of_key_id(bad), None, "{bad}");
        }
        assert_eq!(KeyScope::of_key_id("app_5e4b0f225aca01092928f9é"), None);
    }

    #[test]
    fn slug_examples() {
        for (name, slug) in [
            ("http credential", "http_credential"),
            ("My  API-Key!", "my_api_key"),
            ("tines_api_credential", "tines_api_credential"),
            ("  --Hello__World--  ", "hello_world"),
            ("ABC123", "abc123"),
            ("café au lait", "caf_au_lait"),
            ("日本 key", "key"),
            ("a.b/c", "a_b_c"),
        ] {
            assert_eq!(Slug::from_name(name).unwrap().as_str(), slug, "{name}");
        }
    }

    #[test]
    fn slug_from_name_rejects_no_alnum() {
        for name in ["", "   ", "!!!", "日本語", "___"] {
            let err = Slug::from_name(name).unwrap_err();
            assert_eq!(err.field, "name");
            assert_eq!(
                err.message,
                "name must contain at least one letter or digit"
            );
        }
    }

    #[test]
    fn slug_from_name_caps_length() {
        let long = "ab ".repeat(200);
        let slug = Slug::from_name(&long).unwrap();
        assert!(slug.as_str().len() <= 255);
        assert!(Slug::parse(slug.as_str()).is_ok());
    }

    #[test]
    fn slug_parse() {
        for ok in ["a", "abc_123", "a_b_c", "0"] {
            assert_eq!(Slug::parse(ok).unwrap().as_str(), ok);
        }
        let too_long = "a".repeat(256);
        for bad in ["", "_a", "a_", "a__b", "A", "a-b", "a b", "é", &too_long] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Slug::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn slug_serde() {
        let slug = Slug::parse("my_slug").unwrap();
        assert_eq!(serde_json::to_string(&slug).unwrap(), "\"my_slug\"");
        let back: Slug = serde_json::from_str("\"my_slug\"").unwrap();
        assert_eq!(back, slug);
        assert!(serde_json::from_str::<Slug>("\"Not A Slug\"").is_err());
        assert_eq!(slug.to_string(), "my_slug");
    }

    #[test]
    fn name_parse() {
        assert_eq!(Name::parse("  My key ").unwrap().as_str(), "My key");
        assert_eq!(
            Name::parse(&"é".repeat(255))
                .unwrap()
                .as_str()
                .chars()
                .count(),
            255
        );
        for bad in ["", "   ", "a\nb", "tab\there", "nul\0"] {
            let err = Name::parse(bad).unwrap_err();
            assert_eq!(err.field, "name");
        }
        assert!(Name::parse(&"x".repeat(256)).is_err());
        assert_eq!(
            Name::parse("HTTP credential")
                .unwrap()
                .slug()
                .unwrap()
                .as_str(),
            "http_credential"
        );
    }

    #[test]
    fn jwt_algorithm_parse_round_trip() {
        for alg in JwtAlgorithm::ALL {
            assert_eq!(JwtAlgorithm::parse(alg.as_str()).unwrap(), *alg);
            assert_eq!(
                alg.to_jsonwebtoken(),
                alg.as_str().parse::<jsonwebtoken::Algorithm>().unwrap()
            );
            let json = serde_json::to_string(alg).unwrap();
            assert_eq!(serde_json::from_str::<JwtAlgorithm>(&json).unwrap(), *alg);
        }
        assert_eq!(JwtAlgorithm::ALL.len(), 12);
    }

    #[test]
    fn jwt_algorithm_parse_rejects() {
        for bad in ["hs256", "none", "", "ES512", "EDDSA", " HS256"] {
            let err = JwtAlgorithm::parse(bad).unwrap_err();
            assert_eq!(err.field, "jwt_algorithm");
            assert!(err.message.contains("HS256, HS384"), "{}", err.message);
            assert!(err.message.contains("EdDSA"));
        }
    }

    fn assert_key_ok(alg: JwtAlgorithm, key: &str) {
        if let Err(e) = check_jwt_signing_key(alg, key) {
            panic!("{} rejected a good key: {}", alg.as_str(), e.message);
        }
    }

    fn assert_key_rejected(alg: JwtAlgorithm, key: &str) -> DomainError {
        let err = check_jwt_signing_key(alg, key).unwrap_err();
        assert_eq!(err.field, "jwt_private_key");
        assert!(
            key.trim().len() < 8 || !err.message.contains(key.trim()),
            "message leaks key"
        );
        for line in key.lines().filter(|l| l.len() > 20) {
            assert!(!err.message.contains(line), "message leaks key material");
        }
        err
    }

    #[test]
    fn hmac_accepts_any_non_empty_secret() {
        for alg in [
            JwtAlgorithm::HS256,
            JwtAlgorithm::HS384,
            JwtAlgorithm::HS512,
        ] {
            assert_key_ok(alg, "s");
            assert_key_ok(alg, "a much longer shared secret");
            assert_key_ok(alg, rsa_pem());
            let err = assert_key_rejected(alg, "");
            assert!(err.message.contains("must not be empty"));
        }
    }

    #[test]
    fn rsa_accepts_generated_and_fixture_keys() {
        for alg in RSA_ALGS {
            assert_key_ok(alg, rsa_pem());
            assert_key_ok(alg, FIXTURE_RSA_PKCS8);
            assert_key_ok(alg, FIXTURE_RSA_PKCS1);
        }
    }

    #[test]
    fn rsa_rejects_other_families_and_garbage() {
        for alg in RSA_ALGS {
            for key in [
                ec_p256_pem(),
                ec_p384_pem(),
                ed25519_pem(),
                FIXTURE_EC_P256_SEC1,
                "garbage",
                "-----BEGIN PRIVATE KEY-----\nnotbase64!!\n-----END PRIVATE KEY-----\n",
            ] {
                let err = assert_key_rejected(alg, key);
                assert_eq!(
                    err.message,
                    format!(
                        "jwt_private_key is not a valid RSA private key in PEM format for {}",
                        alg.as_str()
                    )
                );
            }
            assert!(
                assert_key_rejected(alg, "")
                    .message
                    .contains("must not be empty")
            );
        }
    }

    #[test]
    fn rsa_rejects_small_keys() {
        let err = assert_key_rejected(JwtAlgorithm::RS256, FIXTURE_RSA_1024);
        assert!(err.message.contains("2048"), "{}", err.message);
    }

    #[test]
    fn rsa_rejects_public_key() {
        let public = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyeh\nkd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ\n0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdg\ncKWTjpBP2dPwVZ4WWC+9aGVd+Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbc\nmwIDAQAB\n-----END PUBLIC KEY-----\n";
        assert_key_rejected(JwtAlgorithm::RS256, public);
    }

    #[test]
    fn ecdsa_accepts_matching_curve_only() {
        assert_key_ok(JwtAlgorithm::ES256, ec_p256_pem());
        assert_key_ok(JwtAlgorithm::ES256, FIXTURE_EC_P256);
        assert_key_ok(JwtAlgorithm::ES384, ec_p384_pem());
        assert_key_ok(JwtAlgorithm::ES384, FIXTURE_EC_P384);

        for key in [
            ec_p384_pem(),
            FIXTURE_EC_P384,
            rsa_pem(),
            ed25519_pem(),
            "x",
        ] {
            let err = assert_key_rejected(JwtAlgorithm::ES256, key);
            assert_eq!(
                err.message,
                "jwt_private_key is not a valid P-256 EC private key (PKCS#8) in PEM format for ES256"
            );
        }
        for key in [ec_p256_pem(), FIXTURE_EC_P256, rsa_pem(), ed25519_pem()] {
            assert_key_rejected(JwtAlgorithm::ES384, key);
        }
    }

    #[test]
    fn ecdsa_sec1_gets_conversion_hint() {
        let err = assert_key_rejected(JwtAlgorithm::ES256, FIXTURE_EC_P256_SEC1);
        assert!(err.message.contains("PKCS#8"));
        assert!(err.message.contains("openssl pkcs8"));
    }

    #[test]
    fn eddsa_accepts_ed25519_only() {
        assert_key_ok(JwtAlgorithm::EdDSA, ed25519_pem());
        assert_key_ok(JwtAlgorithm::EdDSA, FIXTURE_ED25519);
        for key in [rsa_pem(), ec_p256_pem(), "", "nope"] {
            assert_key_rejected(JwtAlgorithm::EdDSA, key);
        }
        let err = assert_key_rejected(JwtAlgorithm::RS256, ed25519_pem());
        assert!(err.message.contains("RS256"));
    }

    #[test]
    fn install_jwt_provider_is_idempotent() {
        install_jwt_provider();
        install_jwt_provider();
        assert_key_ok(JwtAlgorithm::HS256, "secret");
    }

    #[test]
    fn http_url_parse() {
        let url =
            HttpUrl::parse(" https://example.com/a?b=c ", "http_request_options.url").unwrap();
        assert_eq!(url.as_str(), "https://example.com/a?b=c");
        assert_eq!(url.url().host_str(), Some("example.com"));
        assert!(HttpUrl::parse("http://127.0.0.1:8080", "x").is_ok());
        for bad in [
            "",
            "example.com",
            "/relative",
            "ftp://example.com",
            "file:///etc/passwd",
            "mailto:a@b.c",
            "http://",
            "http://:80/",
        ] {
            let err = HttpUrl::parse(bad, "http_request_options.url").unwrap_err();
            assert_eq!(err.field, "http_request_options.url");
            assert!(err.message.contains("must be an http or https URL"));
        }
        assert_eq!(
            serde_json::to_string(&HttpUrl::parse("http://a.b", "u").unwrap()).unwrap(),
            "\"http://a.b\""
        );
    }

    #[test]
    fn ttl_parse() {
        assert_eq!(TtlSeconds::parse(1).unwrap().get(), 1);
        assert_eq!(TtlSeconds::parse(120).unwrap().get(), 120);
        assert_eq!(
            TtlSeconds::parse(30).unwrap().as_duration(),
            std::time::Duration::from_secs(30)
        );
        for bad in [0, -1, 121, i64::MAX, i64::MIN] {
            let err = TtlSeconds::parse(bad).unwrap_err();
            assert_eq!(err.field, "http_request_ttl");
            assert!(err.message.contains("between 1 and 120"));
        }
    }

    #[test]
    fn read_access_and_mode() {
        for r in ReadAccess::ALL {
            assert_eq!(ReadAccess::parse(r.as_str()).unwrap(), *r);
        }
        assert_eq!(
            ReadAccess::parse("SPECIFIC_TEAMS").unwrap(),
            ReadAccess::SpecificTeams
        );
        assert!(ReadAccess::parse("team").is_err());
        for m in CredentialMode::ALL {
            assert_eq!(CredentialMode::parse(m.as_str()).unwrap(), *m);
            let json = serde_json::to_string(m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
        }
        let err = CredentialMode::parse("jwt").unwrap_err();
        assert_eq!(err.field, "mode");
        assert!(
            err.message
                .contains("TEXT, JWT, OAUTH, AWS, MTLS, HTTP_REQUEST_AGENT, MULTI_REQUEST")
        );
        assert_eq!(CredentialMode::ALL.len(), 7);
    }

    proptest! {
        #[test]
        fn slug_from_name_is_valid_and_idempotent(name in "\\PC*") {
            if let Ok(slug) = Slug::from_name(&name) {
                prop_assert!(Slug::parse(slug.as_str()).is_ok());
                prop_assert_eq!(Slug::from_name(slug.as_str()).unwrap(), slug.clone());
            }
        }

        #[test]
        fn slug_from_name_ascii_heavy(name in "[ A-Za-z0-9_!./-]{0,300}") {
            match Slug::from_name(&name) {
                Ok(slug) => {
                    prop_assert!(Slug::parse(slug.as_str()).is_ok());
                    prop_assert_eq!(Slug::from_name(slug.as_str()).unwrap(), slug);
                }
                Err(e) => prop_assert!(!name.chars().any(|c| c.is_ascii_alphanumeric()), "{}", e),
            }
        }

        #[test]
        fn name_parse_never_panics(s in any::<String>()) {
            if let Ok(name) = Name::parse(&s) {
                prop_assert_eq!(Name::parse(name.as_str()).unwrap(), name);
            }
        }
    }
}

//! Value types every family shares — [`DomainError`], [`Name`], [`HttpUrl`] — and the
//! macros families use for their own closed sets of wire strings (`wire_enum!`,
//! `string_serde!`). Each type is built only through a `parse` constructor that returns a
//! [`DomainError`], so a value of one of these types is valid by construction. Nothing here
//! knows about HTTP.

use std::fmt;

use serde::{Serialize, Serializer};

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
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = <String as serde::Deserialize>::deserialize(deserializer)?;
                let parse: fn(&str) -> Result<$ty, $crate::kernel::types::DomainError> = $parse;
                parse(&raw).map_err(serde::de::Error::custom)
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_serde;

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
            pub fn parse(s: &str) -> Result<Self, $crate::kernel::types::DomainError> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err($crate::kernel::types::DomainError::new(
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

        $crate::kernel::types::string_serde!($name, $name::parse);
    };
}
pub(crate) use wire_enum;

const MAX_NAME_CHARS: usize = 255;

/// Unicode's format characters (general category Cf), as inclusive ranges: invisible, and the
/// bidi overrides among them can make a name read differently from what it is.
const FORMAT_CHARS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    // Zero-width space and the direction marks; not U+200C/U+200D (zero-width non-joiner and
    // joiner), which Persian and Indic text and emoji sequences need.
    (0x200B, 0x200B),
    (0x200E, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Control characters (general category Cc).
const CONTROL_CHARS: &[(u32, u32)] = &[(0x00, 0x1F), (0x7F, 0x9F)];

fn in_ranges(c: char, ranges: &[(u32, u32)]) -> bool {
    let c = u32::from(c);
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// The rule every display name follows, whatever its length: not blank, no control
/// characters, no invisible formatting characters. `Err` holds the message.
pub fn check_visible_text(
    field: &'static str,
    s: &str,
    max_chars: usize,
) -> Result<(), DomainError> {
    let fail = |message: String| Err(DomainError::new(field, message));
    if s.trim().is_empty() {
        return fail(format!("{field} must not be empty"));
    }
    if s.chars().count() > max_chars {
        return fail(format!("{field} must be at most {max_chars} characters"));
    }
    if s.chars().any(|c| in_ranges(c, CONTROL_CHARS)) {
        return fail(format!("{field} must not contain control characters"));
    }
    if s.chars().any(|c| in_ranges(c, FORMAT_CHARS)) {
        return fail(format!(
            "{field} must not contain invisible formatting characters (bidi overrides, zero-width characters)"
        ));
    }
    Ok(())
}

/// The OpenAPI schema of text that passes [`check_visible_text`]: a string of 1 to
/// `max_chars` characters with a visible one, and none of the control or format characters
/// (or null, where `nullable`: an update that leaves the field as it is).
pub fn visible_text_schema(max_chars: usize, nullable: bool) -> utoipa::openapi::Object {
    let mut excluded = String::new();
    for &(lo, hi) in CONTROL_CHARS.iter().chain(FORMAT_CHARS) {
        for c in [lo, hi] {
            // BMP characters as \u escapes; others literally (ECMA-262 has no escape for
            // them outside the u flag).
            match char::from_u32(c) {
                Some(ch) if c > 0xFFFF => excluded.push(ch),
                _ => excluded.push_str(&format!("\\u{c:04X}")),
            }
            if lo == hi {
                break;
            }
            if c == lo {
                excluded.push('-');
            }
        }
    }
    use utoipa::openapi::{Type, schema::SchemaType};
    let kind = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(kind)
        .min_length(Some(1))
        .max_length(Some(max_chars))
        .pattern(Some(format!(
            "^[^{excluded}]*[^\\s{excluded}][^{excluded}]*$"
        )))
        .build()
}

/// The OpenAPI schema of a string that is one of `values` (or null, where `nullable`).
pub fn string_enum_schema(values: &[&str], nullable: bool) -> utoipa::openapi::Object {
    use utoipa::openapi::{Type, schema::SchemaType};
    let (kind, null) = if nullable {
        (
            SchemaType::from_iter([Type::String, Type::Null]),
            Some(serde_json::Value::Null),
        )
    } else {
        (SchemaType::Type(Type::String), None)
    };
    let values = values
        .iter()
        .map(|v| serde_json::Value::from(*v))
        .chain(null);
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(kind)
        .enum_values(Some(values))
        .build()
}

/// The schema of a [`Name`].
pub fn name_schema() -> utoipa::openapi::Object {
    visible_text_schema(MAX_NAME_CHARS, false)
}

/// A credential's display name: trimmed, 1..=255 characters, no control or format
/// characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    /// Trims surrounding whitespace and checks length and characters.
    pub fn parse(s: &str) -> Result<Name, DomainError> {
        let trimmed = s.trim();
        check_visible_text("name", trimmed, MAX_NAME_CHARS)?;
        Ok(Name(trimmed.to_owned()))
    }

    /// The name text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_serde!(Name, Name::parse);

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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

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
        for bad in [
            "",
            "   ",
            "a\nb",
            "tab\there",
            "nul\0",
            "admin\u{202E}txt.exe",
            "zero\u{200B}width",
            "bom\u{FEFF}",
            "tag\u{E0041}",
        ] {
            let err = Name::parse(bad).unwrap_err();
            assert_eq!(err.field, "name");
        }
        assert!(Name::parse(&"x".repeat(256)).is_err());
        assert!(
            Name::parse("Ünïcödé 名前 🔑").is_ok(),
            "visible characters are fine"
        );
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

    proptest! {
        #[test]
        fn name_parse_never_panics(s in any::<String>()) {
            if let Ok(name) = Name::parse(&s) {
                prop_assert_eq!(Name::parse(name.as_str()).unwrap(), name);
            }
        }
    }
}

/// Deserializes an optional integer that JSON may spell `7` or `7.0` (one number in JSON and
/// in JSON Schema, which OpenAPI 3.1 follows); a fraction or a value beyond `i64` is refused.
pub fn json_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Integer;
    impl serde::de::Visitor<'_> for Integer {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // Only where a float holds every integer exactly (±2^53): beyond, `7.0` may be
            // the rounding of a neighbour.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            if v.fract() == 0.0 && (-EXACT..=EXACT).contains(&v) {
                #[allow(clippy::cast_possible_truncation)]
                Ok(Some(v as i64))
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
    }
    d.deserialize_any(Integer)
}

#[cfg(test)]
mod json_integer_tests {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "super::json_integer")]
        n: Option<i64>,
    }

    fn n(json: &str) -> Result<Option<i64>, serde_json::Error> {
        serde_json::from_str::<T>(json).map(|t| t.n)
    }

    #[test]
    fn an_integer_may_be_spelled_as_a_float_without_a_fraction() {
        assert_eq!(n(r#"{"n": 7}"#).unwrap(), Some(7));
        assert_eq!(n(r#"{"n": -7.0}"#).unwrap(), Some(-7));
        assert_eq!(n(r#"{"n": 7e2}"#).unwrap(), Some(700));
        assert_eq!(n(r#"{"n": null}"#).unwrap(), None);
        assert_eq!(n("{}").unwrap(), None);
        assert_eq!(n(r#"{"n": 9007199254740992.0}"#).unwrap(), Some(1 << 53));
        for refused in [
            r#"{"n": 9007199254740994.0}"#,
            r#"{"n": -9223372036854775809}"#,
            r#"{"n": 7.5}"#,
            r#"{"n": 1e19}"#,
            r#"{"n": 18446744073709551615}"#,
            r#"{"n": "7"}"#,
            r#"{"n": true}"#,
        ] {
            assert!(n(refused).is_err(), "{refused}");
        }
    }
}

/// The shapes ids are made in. Each family checks an id against its shape before any lookup,
/// so a made-up id (of any length) costs no store read and no cache entry.
pub mod ids {
    /// A hyphenated UUID (PingOne resources, management tokens).
    pub fn uuid(s: &str) -> bool {
        s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
    }

    /// `len` ASCII letters and digits (organizations, Commerce Layer resources).
    pub fn base62(s: &str, len: usize) -> bool {
        s.len() == len && s.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    /// `len` lowercase hex digits (Sunshine apps and integrations).
    pub fn lower_hex(s: &str, len: usize) -> bool {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn shapes() {
            assert!(super::uuid("0194c4a8-3b9e-7cc1-9d0e-5f3a2b1c0d9e"));
            assert!(!super::uuid("0194c4a83b9e7cc19d0e5f3a2b1c0d9e"));
            assert!(!super::uuid(&"a".repeat(65_000)));
            assert!(super::base62("ZnJdJ4TNfE", 10));
            assert!(!super::base62("ZnJdJ4TNf-", 10));
            assert!(!super::base62("ZnJdJ4TNfEx", 10));
            assert!(super::lower_hex("6566ad4e0123456789abcdef", 24));
            assert!(!super::lower_hex("6566AD4E0123456789abcdef", 24));
        }
    }
}

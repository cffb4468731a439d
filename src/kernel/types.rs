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

/// Unicode's format characters (general category Cf): invisible, and the bidi overrides
/// among them can make a name read differently from what it is.
fn is_format_char(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

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
        if trimmed.chars().any(is_format_char) {
            return Err(DomainError::new(
                "name",
                "name must not contain invisible formatting characters (bidi overrides, zero-width characters)",
            ));
        }
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

//! Scrubbing secrets an upstream echoes: every value Latchkey substituted or fetched for a
//! request is replaced by `[redacted]` wherever it appears in the answer's header values and
//! body (in JSON bodies, in every string and key after parsing, so JSON escaping cannot hide
//! one).
//!
//! Values shorter than [`MIN_LEN`] characters are not searched: they would match ordinary
//! text everywhere, and there is nothing in them to protect.

use serde_json::{Map, Value};

pub const MARK: &str = "[redacted]";
pub const MIN_LEN: usize = 4;

/// The values to scrub, longest first (so a value containing another is replaced whole).
#[derive(Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.secrets.len())
    }
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.chars().count() >= MIN_LEN)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Self { secrets }
    }

    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MARK);
            }
        }
        out
    }

    /// Scrubs every string and key of a JSON value in place.
    pub fn value(&self, value: &mut Value) {
        match value {
            Value::String(s) if self.secrets.iter().any(|x| s.contains(x.as_str())) => {
                *s = self.text(s);
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.value(v)),
            Value::Object(map) => {
                let old = std::mem::take(map);
                *map = old
                    .into_iter()
                    .map(|(k, mut v)| {
                        self.value(&mut v);
                        (self.text(&k), v)
                    })
                    .collect::<Map<String, Value>>();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scrubs_strings_keys_and_escaped_json() {
        let r = Redactor::new(["s3cr\"et/value".to_owned(), "ab".to_owned()]);
        let mut v: Value = serde_json::from_str(
            r#"{"echo": "token=s3cr\"et\/value;", "s3cr\"et/value": [1, "s3cr\"et/value"], "ab": "ab"}"#,
        )
        .expect("json");
        r.value(&mut v);
        assert_eq!(
            v,
            json!({"echo": "token=[redacted];", "[redacted]": [1, "[redacted]"], "ab": "ab"})
        );
        assert_eq!(r.text("x s3cr\"et/value y"), "x [redacted] y");
    }

    #[test]
    fn the_longest_value_wins() {
        let r = Redactor::new(["abcd".to_owned(), "abcdefgh".to_owned()]);
        assert_eq!(r.text("abcdefgh abcd"), "[redacted] [redacted]");
    }
}

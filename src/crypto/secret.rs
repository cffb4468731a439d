//! Generated secrets and their storage form: random identifiers and tokens,
//! and the peppered hash under which management tokens are stored.
//!
//! Tokens are never stored in the clear. The database keeps
//! HMAC-SHA256(pepper, token), where the [`Pepper`] itself is sealed by the
//! keyring, so a copy of the database alone does not let anyone check guesses.
//! A plain hash would suffice against guessing (tokens carry 256 random bits)
//! but not against someone who can read the database and wants to confirm a
//! token seen elsewhere.
//!
//! All randomness comes from aws-lc-rs, the crate's only crypto backend.

use std::fmt;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::keyring::CryptoError;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Largest multiple of 62 that fits in a byte; bytes at or above it are
/// rejected so every character is equally likely.
const BASE62_REJECT_FROM: u8 = 248;

/// Prefix of every management token, so they are recognisable in logs, secret
/// scanners and bug reports.
pub const TOKEN_PREFIX: &str = "lk_";
/// Total length of a management token: prefix plus 43 base62 characters.
pub const TOKEN_LEN: usize = 46;
/// Length of a [`Pepper`].
pub const PEPPER_LEN: usize = 32;
/// Length of [`Pepper::hash`] output.
pub const TOKEN_HASH_LEN: usize = 32;

fn fill(dest: &mut [u8]) -> Result<(), CryptoError> {
    aws_lc_rs::rand::fill(dest).map_err(|_| CryptoError::Rng)
}

/// `N` bytes from the system CSPRNG. The caller owns zeroizing them if secret.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}

/// `len` uniformly random characters from `0-9A-Za-z`, e.g. for short public
/// identifiers. Uses rejection sampling, so there is no modulo bias.
pub fn random_base62(len: usize) -> Result<String, CryptoError> {
    let mut out = String::with_capacity(len);
    // About 3% of bytes are rejected; a little headroom usually means one fill.
    let mut buf = Zeroizing::new(vec![0u8; (len + len / 8 + 8).min(4096)]);
    while out.len() < len {
        fill(&mut buf)?;
        for &b in buf.iter().filter(|&&b| b < BASE62_REJECT_FROM) {
            if out.len() == len {
                break;
            }
            out.push(char::from(BASE62[usize::from(b % 62)]));
        }
    }
    Ok(out)
}

/// `bytes` random bytes as lowercase hex (`2 * bytes` characters).
pub fn random_hex(bytes: usize) -> Result<String, CryptoError> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = Zeroizing::new(vec![0u8; bytes]);
    fill(&mut buf)?;
    let mut out = String::with_capacity(bytes * 2);
    for &b in buf.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    Ok(out)
}

/// `bytes` random bytes as URL-safe base64 without padding.
pub fn random_urlsafe_b64(bytes: usize) -> Result<SecretString, CryptoError> {
    let mut buf = Zeroizing::new(vec![0u8; bytes]);
    fill(&mut buf)?;
    Ok(SecretString::from(URL_SAFE_NO_PAD.encode(&*buf)))
}

/// A new management token: `lk_` followed by 43 random base62 characters (62^43 > 2^256,
/// so at least 256 random bits), always [`TOKEN_LEN`] characters.
pub fn generate_management_token() -> Result<SecretString, CryptoError> {
    let body = Zeroizing::new(random_base62(TOKEN_LEN - TOKEN_PREFIX.len())?);
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(TOKEN_PREFIX);
    token.push_str(&body);
    Ok(SecretString::from(token))
}

/// Cheap syntactic check (prefix, exact length, charset) so that garbage in an
/// `Authorization` header is rejected before any hashing or database lookup.
pub fn looks_like_management_token(s: &str) -> bool {
    s.len() == TOKEN_LEN
        && s.strip_prefix(TOKEN_PREFIX)
            .is_some_and(|body| body.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Secret key for hashing tokens before they are stored.
pub struct Pepper {
    bytes: Zeroizing<[u8; PEPPER_LEN]>,
    key: hmac::Key,
}

impl Pepper {
    /// A fresh random pepper.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; PEPPER_LEN]);
        fill(&mut bytes[..])?;
        Ok(Self::from_array(bytes))
    }

    /// A pepper from exactly 32 bytes (as previously returned by
    /// [`Pepper::as_bytes`] and unsealed).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != PEPPER_LEN {
            return Err(CryptoError::InvalidKey);
        }
        let mut array = Zeroizing::new([0u8; PEPPER_LEN]);
        array.copy_from_slice(bytes);
        Ok(Self::from_array(array))
    }

    fn from_array(bytes: Zeroizing<[u8; PEPPER_LEN]>) -> Self {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &bytes[..]);
        Self { bytes, key }
    }

    /// The raw pepper, for sealing it into the database.
    pub fn as_bytes(&self) -> &[u8; PEPPER_LEN] {
        &self.bytes
    }

    /// HMAC-SHA256(pepper, token): the form in which tokens are stored.
    pub fn hash(&self, token: &str) -> [u8; TOKEN_HASH_LEN] {
        let tag = hmac::sign(&self.key, token.as_bytes());
        let mut out = [0u8; TOKEN_HASH_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Whether `stored` is the hash of `token`, compared in constant time so
    /// response timing reveals nothing about how much of a guess matched.
    pub fn verify(&self, token: &str, stored: &[u8]) -> bool {
        hmac::verify(&self.key, token.as_bytes(), stored).is_ok()
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper([redacted])")
    }
}

/// The key of the audit log's hash chain: HMAC-SHA256, so whoever can write to the database
/// but does not hold the master key cannot recompute a chain they edited.
pub struct AuditKey {
    bytes: Zeroizing<[u8; PEPPER_LEN]>,
    key: hmac::Key,
}

impl AuditKey {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; PEPPER_LEN]);
        fill(&mut bytes[..])?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &bytes[..]);
        Ok(Self { bytes, key })
    }

    pub fn from_bytes(raw: &[u8]) -> Result<Self, CryptoError> {
        if raw.len() != PEPPER_LEN {
            return Err(CryptoError::InvalidKey);
        }
        let mut bytes = Zeroizing::new([0u8; PEPPER_LEN]);
        bytes.copy_from_slice(raw);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &bytes[..]);
        Ok(Self { bytes, key })
    }

    /// The raw key, for sealing it into the database.
    pub fn as_bytes(&self) -> &[u8; PEPPER_LEN] {
        &self.bytes
    }

    /// HMAC-SHA256 of `message`, lowercase hex.
    pub fn mac_hex(&self, message: &[u8]) -> String {
        use std::fmt::Write as _;
        hmac::sign(&self.key, message).as_ref().iter().fold(
            String::with_capacity(64),
            |mut out, b| {
                let _ = write!(out, "{b:02x}");
                out
            },
        )
    }
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use secrecy::ExposeSecret;
    use std::collections::HashSet;

    fn is_base62(s: &str) -> bool {
        s.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    #[test]
    fn random_base62_length_charset_and_spread() {
        for len in [0, 1, 10, 100, 5000] {
            let s = random_base62(len).unwrap();
            assert_eq!(s.len(), len);
            assert!(is_base62(&s));
        }
        let sample = random_base62(20_000).unwrap();
        let distinct: HashSet<char> = sample.chars().collect();
        assert_eq!(distinct.len(), 62);
        assert_ne!(random_base62(10).unwrap(), random_base62(10).unwrap());
    }

    #[test]
    fn random_hex_and_b64() {
        let h = random_hex(16).unwrap();
        assert_eq!(h.len(), 32);
        assert!(h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        assert_eq!(random_hex(0).unwrap(), "");

        let b = random_urlsafe_b64(32).unwrap();
        assert_eq!(b.expose_secret().len(), 43);
        assert!(
            b.expose_secret()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(b.expose_secret()).unwrap().len(), 32);
    }

    #[test]
    fn random_bytes_differ() {
        let a = random_bytes::<32>().unwrap();
        let b = random_bytes::<32>().unwrap();
        assert_ne!(a, b);
        assert_eq!(random_bytes::<0>().unwrap(), [0u8; 0]);
    }

    #[test]
    fn management_token_format() {
        let mut seen = HashSet::new();
        for _ in 0..100 {
            let t = generate_management_token().unwrap();
            let t = t.expose_secret();
            assert_eq!(t.len(), TOKEN_LEN);
            assert!(t.starts_with(TOKEN_PREFIX));
            assert!(looks_like_management_token(t), "{t}");
            assert!(seen.insert(t.to_owned()));
        }
    }

    #[test]
    fn looks_like_management_token_rejects_garbage() {
        let good = generate_management_token().unwrap();
        let good = good.expose_secret();
        let body = &good[TOKEN_PREFIX.len()..];
        let rejects = [
            String::new(),
            "lk_".to_owned(),
            format!("xx_{body}"),
            format!("LK_{body}"),
            format!("lk{body}x"),
            format!("{good}a"),
            good[..TOKEN_LEN - 1].to_owned(),
            format!("lk_{}!", &body[1..]),
            format!("lk_{}-", &body[1..]),
            format!("lk_{} ", &body[1..]),
            format!("lk_{}é", &body[2..]),
            format!("Bearer {good}"),
        ];
        for r in &rejects {
            assert!(!looks_like_management_token(r), "{r:?}");
        }
    }

    #[test]
    fn pepper_hash_and_verify() {
        let p = Pepper::generate().unwrap();
        let q = Pepper::generate().unwrap();
        let t = "lk_token-one";
        assert_eq!(p.hash(t), p.hash(t));
        assert_ne!(p.hash(t), q.hash(t));
        assert_ne!(p.hash(t), p.hash("lk_token-two"));

        let stored = p.hash(t);
        assert!(p.verify(t, &stored));
        assert!(!p.verify("lk_token-two", &stored));
        assert!(!q.verify(t, &stored));
        assert!(!p.verify(t, &stored[..31]));
        assert!(!p.verify(t, &[]));
        let mut longer = stored.to_vec();
        longer.push(0);
        assert!(!p.verify(t, &longer));
        let mut flipped = stored;
        flipped[31] ^= 1;
        assert!(!p.verify(t, &flipped));
    }

    #[test]
    fn pepper_bytes_round_trip() {
        let p = Pepper::generate().unwrap();
        let again = Pepper::from_bytes(p.as_bytes()).unwrap();
        assert_eq!(p.hash("x"), again.hash("x"));
        assert!(matches!(
            Pepper::from_bytes(&[0u8; 31]),
            Err(CryptoError::InvalidKey)
        ));
        assert!(matches!(
            Pepper::from_bytes(&[0u8; 33]),
            Err(CryptoError::InvalidKey)
        ));
        // Known-answer check that this really is HMAC-SHA256 keyed by the pepper.
        let fixed = Pepper::from_bytes(&[0x0b; 32]).unwrap();
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &[0x0b; 32]), b"abc");
        assert_eq!(&fixed.hash("abc")[..], expected.as_ref());
    }

    #[test]
    fn pepper_debug_is_redacted() {
        let bytes = [0x42u8; PEPPER_LEN];
        let p = Pepper::from_bytes(&bytes).unwrap();
        let shown = format!("{p:?}");
        assert_eq!(shown, "Pepper([redacted])");
        assert!(!shown.contains(&STANDARD.encode(bytes)));
        assert!(!shown.contains("42"));
    }
}

/// `serialize_with` helpers for the few places a secret is serialized on purpose: into the
/// plaintext that is sealed next (or kept in process memory), and into the one response
/// that shows a created token or key.
pub mod expose {
    use secrecy::{ExposeSecret, SecretString};
    use serde::Serializer;

    pub fn secret<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(secret.expose_secret())
    }

    pub fn option<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
        match secret {
            Some(secret) => s.serialize_some(secret.expose_secret()),
            None => s.serialize_none(),
        }
    }
}

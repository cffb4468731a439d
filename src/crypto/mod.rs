//! Cryptography: the keyring (AEAD at rest), generated secrets and their hashes, PEM, and
//! JWT keys of every algorithm. Depends on nothing else in the crate, so it can be reviewed
//! and tested on its own; aws-lc-rs is the only crypto backend.
pub mod jwt;
pub mod keyring;
pub mod pem;
pub mod secret;

pub use keyring::{Aad, CryptoError, DataKey, KeyError, Keyring, MasterKey};
pub use secret::{
    AuditKey, Pepper, TOKEN_PREFIX, generate_management_token, looks_like_management_token,
};

/// SHA-256 of `bytes` as lowercase hex (the audit log's chain hashes).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// PKCE's `S256` transform (RFC 7636 §4.2): base64url(SHA-256(verifier)), unpadded.
pub fn pkce_s256(verifier: &str) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Whether two secrets are equal, in time that does not depend on where they differ.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn pkce_s256_matches_rfc_7636() {
        assert_eq!(
            super::pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}

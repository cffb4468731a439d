//! JWT keys of every algorithm Latchkey signs or verifies with: generation, signing, public
//! JWKs, verification with a pinned algorithm, HS256 checks with a shared secret, and the
//! check that a user-supplied private key can sign with the algorithm it is meant for.
//!
//! A [`SigningKey`] holds a private key (PKCS#8 PEM, sealed at rest by the caller) and
//! publishes its public half as a JWK whose `kid` is the RFC 7638 SHA-256 thumbprint, so a
//! `kid` can never name two different keys. Verification pins the algorithm of the key; the
//! token header never chooses it.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    jwk::{Jwk, ThumbprintHash},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};

use super::CryptoError;

/// The JWK types, as published in JWK Sets.
pub use jsonwebtoken::jwk::{Jwk as PublicJwk, JwkSet};

/// Makes aws-lc-rs jsonwebtoken's process-wide crypto provider, once at start-up
/// (`Kernel::open`). With only the `aws_lc_rs` feature jsonwebtoken would pick it itself, but
/// if another crate ever turned on `rust_crypto` too it could no longer choose and would
/// panic on first use. Later calls keep the provider in place.
pub fn install_provider() {
    // An `Err` only means a provider is already installed.
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}

/// The algorithms a JWT may be signed with, as their JOSE names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl JwtAlgorithm {
    pub const ALL: &'static [JwtAlgorithm] = &[
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// The algorithms with a key pair (everything but HMAC): what an issuer can sign with.
    pub const ASYMMETRIC: &'static [JwtAlgorithm] = Self::ALL.split_at(3).1;

    /// Parses the exact (case-sensitive) JOSE name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    fn to_jsonwebtoken(self) -> Algorithm {
        match self {
            Self::HS256 => Algorithm::HS256,
            Self::HS384 => Algorithm::HS384,
            Self::HS512 => Algorithm::HS512,
            Self::RS256 => Algorithm::RS256,
            Self::RS384 => Algorithm::RS384,
            Self::RS512 => Algorithm::RS512,
            Self::PS256 => Algorithm::PS256,
            Self::PS384 => Algorithm::PS384,
            Self::PS512 => Algorithm::PS512,
            Self::ES256 => Algorithm::ES256,
            Self::ES384 => Algorithm::ES384,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }

    /// What kind of key this algorithm needs, in words for error messages.
    fn key_description(self) -> &'static str {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => "HMAC secret",
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                "RSA private key"
            }
            Self::ES256 => "P-256 EC private key (PKCS#8)",
            Self::ES384 => "P-384 EC private key (PKCS#8)",
            Self::EdDSA => "Ed25519 private key (PKCS#8)",
        }
    }

    /// Loads a private key of this algorithm's family from PEM (a secret for HMAC).
    fn encoding_key(self, pem: &[u8]) -> Option<EncodingKey> {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => Some(EncodingKey::from_secret(pem)),
            Self::RS256 | Self::RS384 | Self::RS512 | Self::PS256 | Self::PS384 | Self::PS512 => {
                EncodingKey::from_rsa_pem(pem).ok()
            }
            Self::ES256 | Self::ES384 => EncodingKey::from_ec_pem(pem).ok(),
            Self::EdDSA => EncodingKey::from_ed_pem(pem).ok(),
        }
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JwtAlgorithm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JwtAlgorithm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).ok_or_else(|| serde::de::Error::custom("unknown JWT algorithm"))
    }
}

/// Signs `claims` with `key` (PEM, or the secret for HMAC) under `alg`, header
/// `{alg, typ: "JWT"}`: JWTs minted for a stored credential.
pub fn sign_with(
    alg: JwtAlgorithm,
    key: &SecretString,
    claims: &impl Serialize,
) -> Result<String, CryptoError> {
    let encoding = alg
        .encoding_key(key.expose_secret().as_bytes())
        .ok_or(CryptoError::InvalidKey)?;
    let mut header = Header::new(alg.to_jsonwebtoken());
    header.typ = Some("JWT".to_owned());
    jsonwebtoken::encode(&header, claims, &encoding).map_err(|_| CryptoError::InvalidKey)
}

/// Checks that `key` can sign JWTs with `alg`, by signing a small throwaway token.
///
/// Building an `EncodingKey` only checks the PEM envelope; the curve, key size and
/// key/algorithm pairing are only checked when signing, so signing is the only trustworthy
/// test. The error is a message for the user, naming `field`; it never includes the key.
pub fn check_signing_key(alg: JwtAlgorithm, key: &str, field: &str) -> Result<(), String> {
    if key.trim().is_empty() {
        return Err(format!("{field} must not be empty for {alg}"));
    }
    let invalid = || {
        let mut message = format!(
            "{field} is not a valid {} in PEM format for {alg}",
            alg.key_description()
        );
        if matches!(alg, JwtAlgorithm::ES256 | JwtAlgorithm::ES384)
            && key.contains("BEGIN EC PRIVATE KEY")
        {
            message.push_str(
                "; SEC1 (BEGIN EC PRIVATE KEY) keys must be converted to PKCS#8 \
                 (BEGIN PRIVATE KEY), e.g. with `openssl pkcs8 -topk8 -nocrypt`",
            );
        }
        message
    };
    let encoding = alg.encoding_key(key.as_bytes()).ok_or_else(invalid)?;
    let header = Header::new(alg.to_jsonwebtoken());
    match jsonwebtoken::encode(&header, &serde_json::json!({ "sub": "check" }), &encoding) {
        Ok(_) => Ok(()),
        Err(_) if rsa_key_too_small(alg, &encoding) => Err(format!(
            "{field} is an RSA key smaller than 2048 bits; {alg} needs at least 2048 bits"
        )),
        Err(_) => Err(invalid()),
    }
}

/// Distinguishes "too small" from other RSA failures so the user gets an actionable message;
/// aws-lc-rs rejects RSA keys under 2048 bits.
fn rsa_key_too_small(alg: JwtAlgorithm, key: &EncodingKey) -> bool {
    key.family() == jsonwebtoken::AlgorithmFamily::Rsa
        && alg.to_jsonwebtoken().family() == jsonwebtoken::AlgorithmFamily::Rsa
        && matches!(
            aws_lc_rs::signature::RsaKeyPair::from_der(key.as_bytes()),
            Err(e) if e.description_() == "TooSmall"
        )
}

/// A fresh private key for `alg` as PKCS#8 DER: RSA-2048 for RS*/PS*, P-256/P-384 for
/// ES256/ES384, Ed25519 for EdDSA. CPU-heavy for RSA (tens of milliseconds): call it off
/// the async runtime.
fn generate_pkcs8(alg: JwtAlgorithm) -> Result<Vec<u8>, CryptoError> {
    use aws_lc_rs::{
        encoding::{AsDer, Pkcs8V1Der},
        rsa::{KeyPair as RsaKeyPair, KeySize},
        signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
            Ed25519KeyPair,
        },
    };
    let der = match alg {
        JwtAlgorithm::RS256
        | JwtAlgorithm::RS384
        | JwtAlgorithm::RS512
        | JwtAlgorithm::PS256
        | JwtAlgorithm::PS384
        | JwtAlgorithm::PS512 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| CryptoError::Rng)?;
            let der: Pkcs8V1Der<'_> = pair.as_der().map_err(|_| CryptoError::InvalidKey)?;
            der.as_ref().to_vec()
        }
        JwtAlgorithm::ES256 | JwtAlgorithm::ES384 => {
            let curve = if alg == JwtAlgorithm::ES256 {
                &ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let pair = EcdsaKeyPair::generate(curve).map_err(|_| CryptoError::Rng)?;
            let der = pair.to_pkcs8v1().map_err(|_| CryptoError::InvalidKey)?;
            der.as_ref().to_vec()
        }
        // jsonwebtoken reads Ed25519 keys in the 48-byte PKCS#8 v1 form only.
        JwtAlgorithm::EdDSA => {
            let pair = Ed25519KeyPair::generate().map_err(|_| CryptoError::Rng)?;
            let der = pair.to_pkcs8v1().map_err(|_| CryptoError::InvalidKey)?;
            der.as_ref().to_vec()
        }
        JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512 => {
            return Err(CryptoError::InvalidKey);
        }
    };
    Ok(der)
}

/// A private key that signs, with its public JWK.
pub struct SigningKey {
    kid: String,
    algorithm: JwtAlgorithm,
    /// The key, parsed once: jsonwebtoken's `encode` parses the PKCS#8 document again for
    /// every token, which for P-256 and Ed25519 costs as much as the signature itself.
    signer: Signer,
    /// The token header `{typ, alg, kid}`, base64url-encoded once.
    header: String,
    jwk: Jwk,
}

/// A parsed private key and the signature scheme it signs with.
enum Signer {
    Rsa(
        aws_lc_rs::signature::RsaKeyPair,
        &'static dyn aws_lc_rs::signature::RsaEncoding,
    ),
    Ecdsa(aws_lc_rs::signature::EcdsaKeyPair),
    Ed25519(aws_lc_rs::signature::Ed25519KeyPair),
}

impl Signer {
    fn from_pkcs8(algorithm: JwtAlgorithm, der: &[u8]) -> Result<Self, CryptoError> {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
            Ed25519KeyPair, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512, RSA_PSS_SHA256,
            RSA_PSS_SHA384, RSA_PSS_SHA512, RsaKeyPair,
        };
        let rsa = |encoding| {
            RsaKeyPair::from_pkcs8(der)
                .map(|pair| Self::Rsa(pair, encoding))
                .map_err(|_| CryptoError::InvalidKey)
        };
        let ecdsa = |curve| {
            EcdsaKeyPair::from_pkcs8(curve, der)
                .map(Self::Ecdsa)
                .map_err(|_| CryptoError::InvalidKey)
        };
        match algorithm {
            JwtAlgorithm::RS256 => rsa(&RSA_PKCS1_SHA256),
            JwtAlgorithm::RS384 => rsa(&RSA_PKCS1_SHA384),
            JwtAlgorithm::RS512 => rsa(&RSA_PKCS1_SHA512),
            JwtAlgorithm::PS256 => rsa(&RSA_PSS_SHA256),
            JwtAlgorithm::PS384 => rsa(&RSA_PSS_SHA384),
            JwtAlgorithm::PS512 => rsa(&RSA_PSS_SHA512),
            JwtAlgorithm::ES256 => ecdsa(&ECDSA_P256_SHA256_FIXED_SIGNING),
            JwtAlgorithm::ES384 => ecdsa(&ECDSA_P384_SHA384_FIXED_SIGNING),
            // The 48-byte PKCS#8 v1 form has no public key to check against.
            JwtAlgorithm::EdDSA => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map(Self::Ed25519)
                .map_err(|_| CryptoError::InvalidKey),
            JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512 => {
                Err(CryptoError::InvalidKey)
            }
        }
    }

    /// The signature of `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match self {
            Self::Rsa(pair, encoding) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(*encoding, &rng, message, &mut signature)
                    .map_err(|_| CryptoError::InvalidKey)?;
                Ok(signature)
            }
            Self::Ecdsa(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| CryptoError::InvalidKey),
            Self::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key for `alg` (an asymmetric algorithm), and its PKCS#8 PEM for sealing.
    /// Blocking: RSA generation takes tens of milliseconds.
    pub fn generate(alg: JwtAlgorithm) -> Result<(Self, SecretString), CryptoError> {
        let der = zeroize::Zeroizing::new(generate_pkcs8(alg)?);
        let pem = SecretString::from(super::pem::encode("PRIVATE KEY", &der));
        Ok((Self::from_pem(alg, &pem)?, pem))
    }

    /// Loads a key from its PKCS#8 PEM.
    pub fn from_pem(algorithm: JwtAlgorithm, pem: &SecretString) -> Result<Self, CryptoError> {
        if !JwtAlgorithm::ASYMMETRIC.contains(&algorithm) {
            return Err(CryptoError::InvalidKey);
        }
        let encoding = algorithm
            .encoding_key(pem.expose_secret().as_bytes())
            .ok_or(CryptoError::InvalidKey)?;
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm.to_jsonwebtoken())
            .map_err(|_| CryptoError::InvalidKey)?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| CryptoError::InvalidKey)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        let der = zeroize::Zeroizing::new(
            pem::parse(pem.expose_secret())
                .map_err(|_| CryptoError::InvalidKey)?
                .into_contents(),
        );
        let signer = Signer::from_pkcs8(algorithm, &der)?;
        let mut header = Header::new(algorithm.to_jsonwebtoken());
        header.typ = Some("JWT".to_owned());
        header.kid = Some(kid.clone());
        let header = serde_json::to_vec(&header).map_err(|_| CryptoError::InvalidKey)?;
        Ok(Self {
            kid,
            algorithm,
            signer,
            header: URL_SAFE_NO_PAD.encode(header),
            jwk,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// The public half, as published in a JWK Set.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// A compact JWT with header `{typ: "JWT", alg, kid}`.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, CryptoError> {
        let claims = serde_json::to_vec(claims).map_err(|_| CryptoError::InvalidKey)?;
        let mut token = String::with_capacity(self.header.len() + claims.len() * 4 / 3 + 700);
        token.push_str(&self.header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut token);
        let signature = self.signer.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// Whether `kid` has the shape of a key id of ours: an RFC 7638 SHA-256 thumbprint, 43
/// base64url characters. A cheap check before any lookup or cache insert.
pub fn is_thumbprint_kid(kid: &str) -> bool {
    kid.len() == 43
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A public key that verifies tokens signed by one [`SigningKey`].
pub struct VerifyingKey {
    validation: Validation,
    decoding: DecodingKey,
}

/// Why a token did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    Malformed,
    BadSignature,
    Expired,
}

fn verify_error(e: &jsonwebtoken::errors::Error) -> VerifyError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => VerifyError::BadSignature,
        ErrorKind::ExpiredSignature => VerifyError::Expired,
        _ => VerifyError::Malformed,
    }
}

/// Signature and `exp` only: no other claim is required, the audience is the caller's rule.
fn validation(algorithm: Algorithm, leeway_seconds: u64) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.required_spec_claims.clear();
    validation.validate_aud = false;
    validation.leeway = leeway_seconds;
    validation
}

impl VerifyingKey {
    pub fn from_jwk(jwk: &Jwk, algorithm: JwtAlgorithm) -> Result<Self, CryptoError> {
        Ok(Self {
            validation: validation(algorithm.to_jsonwebtoken(), 0),
            decoding: DecodingKey::from_jwk(jwk).map_err(|_| CryptoError::InvalidKey)?,
        })
    }

    /// Verifies the signature with this key's algorithm (never the header's choice) and, when
    /// the token has `exp`, that it has not passed.
    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, VerifyError> {
        jsonwebtoken::decode::<T>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|e| verify_error(&e))
    }
}

/// Verifies HS256 JWTs signed with a shared secret (an API key's), honouring `exp` with some
/// leeway for clock skew. The algorithm is pinned to HS256: the header must name it.
///
/// This is the hot path of key-signed JWTs, so it does no more than the check needs: the
/// header is the one the caller already read (with [`decode_header`], for its `kid`), the
/// signature is decoded onto the stack and checked with aws-lc's HMAC (constant time), and
/// the claims are decoded once into `T` and once for `exp`. (`jsonwebtoken::decode` also
/// deserializes its whole `Header`, copies the secret and boxes a verifier per call, and its
/// HMAC check encodes the expected signature to compare strings: more than the HMAC costs.)
pub struct Hs256Verifier {
    leeway_seconds: u64,
}

impl Hs256Verifier {
    pub const fn new(leeway_seconds: u64) -> Self {
        Self { leeway_seconds }
    }

    /// `header` is what [`decode_header`] read from this `token`.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        header: &JwtHeader,
        secret: &[u8],
    ) -> Result<T, VerifyError> {
        if header.algorithm != Some(JwtAlgorithm::HS256) {
            return Err(VerifyError::BadSignature);
        }
        let (message, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
        let (_, claims) = message.split_once('.').ok_or(VerifyError::Malformed)?;
        let mut mac = [0u8; 64];
        let mac = match URL_SAFE_NO_PAD.decode_slice(signature, &mut mac) {
            Ok(len) => &mac[..len],
            Err(_) => return Err(VerifyError::BadSignature),
        };
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        aws_lc_rs::hmac::verify(&key, message.as_bytes(), mac)
            .map_err(|_| VerifyError::BadSignature)?;
        let claims = base64url(claims).ok_or(VerifyError::Malformed)?;
        let Expiry { exp } = serde_json::from_slice(&claims).map_err(|_| VerifyError::Malformed)?;
        if let Some(exp) = exp {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if exp < now.saturating_sub(self.leeway_seconds) {
                return Err(VerifyError::Expired);
            }
        }
        serde_json::from_slice(&claims).map_err(|_| VerifyError::Malformed)
    }
}

/// `exp`, when a token has one: seconds since the epoch.
#[derive(Deserialize)]
struct Expiry {
    exp: Option<u64>,
}

fn base64url(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part).ok()
}

/// What a JWT header says of its algorithm and key, read without building jsonwebtoken's
/// whole `Header`.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
}

impl RawHeader {
    /// The header of `encoded` (its first part, base64url), if it is a JSON object with `alg`.
    fn decode(encoded: &str) -> Option<Self> {
        serde_json::from_slice(&base64url(encoded)?).ok()
    }
}

/// The parts of a JWT header the dispatch looks at; `None` if `token` is not a JWT.
pub struct JwtHeader {
    pub algorithm: Option<JwtAlgorithm>,
    pub kid: Option<String>,
}

/// The header of a compact JWT (three dot-separated parts), if its first part is a JSON
/// object naming an algorithm jsonwebtoken knows.
pub fn decode_header(token: &str) -> Option<JwtHeader> {
    let (header, rest) = token.split_once('.')?;
    if rest.bytes().filter(|b| *b == b'.').count() != 1 {
        return None;
    }
    let header = RawHeader::decode(header)?;
    let alg = header.alg.parse::<Algorithm>().ok()?;
    Some(JwtHeader {
        algorithm: JwtAlgorithm::ALL
            .iter()
            .copied()
            .find(|a| a.to_jsonwebtoken() == alg),
        kid: header.kid,
    })
}

/// Freshly generated private keys in PEM form, for tests anywhere in the crate. Generated
/// rather than checked in so no test depends on a key that might be flagged or expire; RSA
/// generation is slow, so keys are cached.
#[cfg(test)]
pub(crate) mod test_keys {
    use std::sync::OnceLock;

    use super::{JwtAlgorithm, generate_pkcs8};

    fn cached(slot: &'static OnceLock<String>, alg: JwtAlgorithm) -> &'static str {
        slot.get_or_init(|| {
            crate::crypto::pem::encode("PRIVATE KEY", &generate_pkcs8(alg).unwrap())
        })
    }

    /// A 2048-bit RSA key, PKCS#8.
    pub(crate) fn rsa_pem() -> &'static str {
        static KEY: OnceLock<String> = OnceLock::new();
        cached(&KEY, JwtAlgorithm::RS256)
    }

    /// A P-256 key, PKCS#8.
    pub(crate) fn ec_p256_pem() -> &'static str {
        static KEY: OnceLock<String> = OnceLock::new();
        cached(&KEY, JwtAlgorithm::ES256)
    }

    /// A P-384 key, PKCS#8.
    pub(crate) fn ec_p384_pem() -> &'static str {
        static KEY: OnceLock<String> = OnceLock::new();
        cached(&KEY, JwtAlgorithm::ES384)
    }

    /// An Ed25519 key, PKCS#8 v1.
    pub(crate) fn ed25519_pem() -> &'static str {
        static KEY: OnceLock<String> = OnceLock::new();
        cached(&KEY, JwtAlgorithm::EdDSA)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// Every asymmetric algorithm: generate, reload, sign, publish, verify; and the refusals.
    #[test]
    fn every_algorithm_signs_publishes_and_verifies() {
        install_provider();
        for &alg in JwtAlgorithm::ASYMMETRIC {
            let (key, pem) = SigningKey::generate(alg).unwrap();
            assert!(
                pem.expose_secret()
                    .starts_with("-----BEGIN PRIVATE KEY-----"),
                "{alg}"
            );
            let reloaded = SigningKey::from_pem(alg, &pem).unwrap();
            assert_eq!(reloaded.kid(), key.kid(), "{alg}: the kid is a thumbprint");
            assert!(is_thumbprint_kid(key.kid()), "{alg}");

            let token = key.sign(&json!({"jti": "x"})).unwrap();
            // PKCS#1 v1.5 and Ed25519 signatures are deterministic: the very token
            // jsonwebtoken makes of the same header, claims and key.
            if matches!(
                alg,
                JwtAlgorithm::RS256 | JwtAlgorithm::RS512 | JwtAlgorithm::EdDSA
            ) {
                let mut header = Header::new(alg.to_jsonwebtoken());
                header.typ = Some("JWT".to_owned());
                header.kid = Some(key.kid().to_owned());
                let encoding = alg.encoding_key(pem.expose_secret().as_bytes()).unwrap();
                let expected = jsonwebtoken::encode(&header, &json!({"jti": "x"}), &encoding);
                assert_eq!(token, expected.unwrap(), "{alg}");
            }
            let header = decode_header(&token).unwrap();
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
            assert_eq!(header.algorithm, Some(alg));

            let jwk = serde_json::to_value(key.jwk()).unwrap();
            assert_eq!(jwk["kid"], key.kid());
            assert_eq!(jwk["alg"], alg.as_str());
            assert!(jwk.get("d").is_none(), "{alg}: no private component");

            let verifier = VerifyingKey::from_jwk(key.jwk(), alg).unwrap();
            let claims: Value = verifier.verify(&token).unwrap();
            assert_eq!(claims["jti"], "x");

            let mut tampered = token.clone().into_bytes();
            let i = tampered.len() - 5;
            tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(tampered).unwrap();
            assert_eq!(
                verifier.verify::<Value>(&tampered).unwrap_err(),
                VerifyError::BadSignature,
                "{alg}"
            );
            let (other, _) = SigningKey::generate(alg).unwrap();
            let foreign = other.sign(&json!({"jti": "x"})).unwrap();
            assert_eq!(
                verifier.verify::<Value>(&foreign).unwrap_err(),
                VerifyError::BadSignature,
                "{alg}"
            );
            let expired = key.sign(&json!({"exp": 1000})).unwrap();
            assert_eq!(
                verifier.verify::<Value>(&expired).unwrap_err(),
                VerifyError::Expired,
                "{alg}"
            );
            assert!(!format!("{key:?}").contains("PRIVATE"));
        }
        assert_eq!(
            VerifyingKey::from_jwk(
                SigningKey::generate(JwtAlgorithm::RS256).unwrap().0.jwk(),
                JwtAlgorithm::RS256
            )
            .unwrap()
            .verify::<Value>("a.b.c")
            .unwrap_err(),
            VerifyError::Malformed
        );
        assert!(SigningKey::generate(JwtAlgorithm::HS256).is_err());
    }

    #[test]
    fn an_hs256_token_cannot_pass_as_rs256() {
        install_provider();
        let (key, _) = SigningKey::generate(JwtAlgorithm::RS256).unwrap();
        let verifier = VerifyingKey::from_jwk(key.jwk(), JwtAlgorithm::RS256).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid().to_owned());
        let forged = jsonwebtoken::encode(
            &header,
            &json!({"jti": "x"}),
            &EncodingKey::from_secret(b"public-n-value"),
        )
        .unwrap();
        assert!(verifier.verify::<Value>(&forged).is_err());
    }

    /// What a caller does: reads the header, then verifies with it.
    fn hs256(token: &str, secret: &[u8]) -> Result<Value, VerifyError> {
        let header = decode_header(token).ok_or(VerifyError::Malformed)?;
        Hs256Verifier::new(30).verify(token, &header, secret)
    }

    #[test]
    fn hs256_with_a_shared_secret() {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("app_1".into());
        let token = jsonwebtoken::encode(
            &header,
            &json!({"scope": "app"}),
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        let claims: Value = hs256(&token, b"s3cret").unwrap();
        assert_eq!(claims["scope"], "app");
        assert_eq!(
            hs256(&token, b"other").unwrap_err(),
            VerifyError::BadSignature
        );
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &json!({}),
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert_eq!(
            hs256(&hs384, b"s3cret").unwrap_err(),
            VerifyError::BadSignature
        );
    }

    /// Hand-built tokens: the header's `alg` is pinned, `exp` honoured with the leeway, and
    /// every part must decode.
    #[test]
    fn hs256_refuses_what_it_must() {
        use base64::Engine as _;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let sign = |header: &Value, claims: &Value| {
            let message = format!("{}.{}", b64(header), b64(claims));
            let mac = aws_lc_rs::hmac::sign(
                &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"k"),
                message.as_bytes(),
            );
            let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac);
            format!("{message}.{signature}")
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({"alg": "HS256", "kid": "app_1"});
        let good = sign(&header, &json!({"scope": "app", "exp": now + 60}));
        assert!(hs256(&good, b"k").is_ok());
        assert_eq!(decode_header(&good).unwrap().kid.as_deref(), Some("app_1"));
        // Within the leeway, and past it.
        let skewed = sign(&header, &json!({"exp": now - 10}));
        assert!(hs256(&skewed, b"k").is_ok());
        let expired = sign(&header, &json!({"exp": now - 60}));
        assert_eq!(hs256(&expired, b"k").unwrap_err(), VerifyError::Expired);
        let bad_exp = sign(&header, &json!({"exp": "tomorrow"}));
        assert_eq!(hs256(&bad_exp, b"k").unwrap_err(), VerifyError::Malformed);
        // The header chooses nothing: `none`, another HMAC, or no `alg` at all.
        for header in [
            json!({"alg": "none"}),
            json!({"alg": "HS512"}),
            json!({"alg": "hs256"}),
        ] {
            let token = sign(&header, &json!({}));
            assert!(hs256(&token, b"k").is_err());
            let read = decode_header(&token).map(|h| h.algorithm);
            assert!(read.is_none() || read == Some(Some(JwtAlgorithm::HS512)));
            let claimed = JwtHeader {
                algorithm: Some(JwtAlgorithm::HS512),
                kid: None,
            };
            assert_eq!(
                Hs256Verifier::new(30)
                    .verify::<Value>(&token, &claimed, b"k")
                    .unwrap_err(),
                VerifyError::BadSignature
            );
        }
        let no_alg = sign(&json!({"kid": "app_1"}), &json!({}));
        assert_eq!(hs256(&no_alg, b"k").unwrap_err(), VerifyError::Malformed);
        assert!(decode_header(&no_alg).is_none());
        // Tampered claims, a stripped signature, extra parts, non-JSON claims.
        let (message, signature) = good.rsplit_once('.').unwrap();
        let (head, _) = message.split_once('.').unwrap();
        let tampered = format!("{head}.{}.{signature}", b64(&json!({"scope": "account"})));
        assert_eq!(
            hs256(&tampered, b"k").unwrap_err(),
            VerifyError::BadSignature
        );
        assert!(hs256(&format!("{message}."), b"k").is_err());
        assert!(hs256(&format!("{good}.x"), b"k").is_err());
        assert!(decode_header(&format!("{good}.x")).is_none());
        let not_json = sign(&header, &json!("a string"));
        let read = decode_header(&not_json).unwrap();
        assert_eq!(
            Hs256Verifier::new(30)
                .verify::<std::collections::HashMap<String, Value>>(&not_json, &read, b"k")
                .unwrap_err(),
            VerifyError::Malformed
        );
    }

    #[test]
    fn thumbprint_kids() {
        assert!(is_thumbprint_kid(&"a".repeat(43)));
        assert!(!is_thumbprint_kid(&"a".repeat(44)));
        assert!(!is_thumbprint_kid(&format!("{}=", "a".repeat(42))));
        assert!(!is_thumbprint_kid("app_0123"));
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
        assert!(JwtAlgorithm::parse("none").is_none());
    }

    #[test]
    fn install_provider_is_idempotent() {
        install_provider();
        install_provider();
        check_signing_key(JwtAlgorithm::HS256, "secret", "k").unwrap();
    }
}

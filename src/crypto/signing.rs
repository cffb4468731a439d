//! Keys for the JWTs Latchkey issues: generation, signing, public JWKs and verification.
//!
//! A [`SigningKey`] holds a private key (PKCS#8 PEM, sealed at rest by the caller) and
//! publishes its public half as a JWK whose `kid` is the RFC 7638 SHA-256 thumbprint, so a
//! `kid` can never name two different keys. Verification pins the algorithm of the key; the
//! token header never chooses it.

use base64::Engine as _;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    jwk::{Jwk, ThumbprintHash},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, de::DeserializeOwned};

use super::CryptoError;

/// A private key that signs, with its public JWK.
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl SigningKey {
    /// A fresh RSA-2048 key for RS256, and its PKCS#8 PEM for sealing.
    pub fn generate_rs256() -> Result<(Self, SecretString), CryptoError> {
        use aws_lc_rs::{
            encoding::AsDer,
            rsa::{KeyPair, KeySize},
        };
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| CryptoError::Rng)?;
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
            .map_err(|_| CryptoError::InvalidKey)?;
        let pem = SecretString::from(pem("PRIVATE KEY", der.as_ref()));
        Ok((Self::from_pem(Algorithm::RS256, &pem)?, pem))
    }

    /// Loads a key from its PKCS#8 PEM.
    pub fn from_pem(algorithm: Algorithm, pem: &SecretString) -> Result<Self, CryptoError> {
        let bytes = pem.expose_secret().as_bytes();
        let encoding = match algorithm {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => EncodingKey::from_rsa_pem(bytes),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(bytes),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(bytes),
            _ => return Err(CryptoError::InvalidKey),
        }
        .map_err(|_| CryptoError::InvalidKey)?;
        let mut jwk =
            Jwk::from_encoding_key(&encoding, algorithm).map_err(|_| CryptoError::InvalidKey)?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| CryptoError::InvalidKey)?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        Ok(Self {
            kid,
            algorithm,
            encoding,
            jwk,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public half, as published in a JWK Set.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// A compact JWT with header `{alg, typ: "JWT", kid}`.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, CryptoError> {
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| CryptoError::InvalidKey)
    }
}

/// A public key that verifies tokens signed by one [`SigningKey`].
pub struct VerifyingKey {
    algorithm: Algorithm,
    decoding: DecodingKey,
}

/// Why a token did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    Malformed,
    BadSignature,
    Expired,
}

impl VerifyingKey {
    pub fn from_jwk(jwk: &Jwk, algorithm: Algorithm) -> Result<Self, CryptoError> {
        Ok(Self {
            algorithm,
            decoding: DecodingKey::from_jwk(jwk).map_err(|_| CryptoError::InvalidKey)?,
        })
    }

    /// Verifies the signature with this key's algorithm (never the header's choice) and, when
    /// the token has `exp`, that it has not passed. No other claim is required.
    pub fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, VerifyError> {
        let mut validation = Validation::new(self.algorithm);
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        validation.leeway = 0;
        jsonwebtoken::decode::<T>(token, &self.decoding, &validation)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                        VerifyError::BadSignature
                    }
                    ErrorKind::ExpiredSignature => VerifyError::Expired,
                    _ => VerifyError::Malformed,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn sign_verify_and_publish() {
        let (key, pem) = SigningKey::generate_rs256().unwrap();
        assert!(
            pem.expose_secret()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        let reloaded = SigningKey::from_pem(Algorithm::RS256, &pem).unwrap();
        assert_eq!(
            reloaded.kid(),
            key.kid(),
            "the kid is a thumbprint: stable across reloads"
        );
        assert_eq!(key.kid().len(), 43);

        let token = key.sign(&json!({"jti": "x"})).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid()));
        assert_eq!(header.typ.as_deref(), Some("JWT"));

        let jwk_json = serde_json::to_value(key.jwk()).unwrap();
        assert_eq!(jwk_json["kty"], "RSA");
        assert_eq!(jwk_json["kid"], key.kid());
        assert!(
            jwk_json.get("d").is_none(),
            "no private component is published"
        );

        let verifier = VerifyingKey::from_jwk(key.jwk(), Algorithm::RS256).unwrap();
        let claims: Value = verifier.verify(&token).unwrap();
        assert_eq!(claims["jti"], "x");

        let mut tampered = token.clone().into_bytes();
        let i = tampered.len() - 5;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            verifier.verify::<Value>(&tampered).unwrap_err(),
            VerifyError::BadSignature
        );

        let (other, _) = SigningKey::generate_rs256().unwrap();
        let foreign = other.sign(&json!({"jti": "x"})).unwrap();
        assert_eq!(
            verifier.verify::<Value>(&foreign).unwrap_err(),
            VerifyError::BadSignature
        );

        let expired = key.sign(&json!({"exp": 1000})).unwrap();
        assert_eq!(
            verifier.verify::<Value>(&expired).unwrap_err(),
            VerifyError::Expired
        );
        assert_eq!(
            verifier.verify::<Value>("a.b.c").unwrap_err(),
            VerifyError::Malformed
        );
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }

    #[test]
    fn an_hs256_token_cannot_pass_as_rs256() {
        let (key, _) = SigningKey::generate_rs256().unwrap();
        let verifier = VerifyingKey::from_jwk(key.jwk(), Algorithm::RS256).unwrap();
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
}

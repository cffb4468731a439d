//! Client certificates: an MTLS credential becomes an HTTP client that presents its
//! certificate and key (and trusts only `mtls_root_certificate`, when set). Building one
//! checks that the key matches the certificate, so the family builds one when a credential
//! is written, and the engine keeps one client per credential version.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::{EgressConfig, EgressError, client, network::NetworkPolicy};

/// A client presenting `certificate` (PEM, the chain) with `key` (PEM).
pub fn client(
    config: &EgressConfig,
    policy: &Arc<NetworkPolicy>,
    certificate: &str,
    key: &SecretString,
    root: Option<&str>,
) -> Result<reqwest::Client, String> {
    let mut pem = Zeroizing::new(Vec::with_capacity(certificate.len() + 4096));
    pem.extend_from_slice(key.expose_secret().as_bytes());
    pem.push(b'\n');
    pem.extend_from_slice(certificate.as_bytes());
    let identity = reqwest::Identity::from_pem(&pem)
        .map_err(|_| "the certificate and private key cannot be read as PEM".to_owned())?;
    let mut builder = client::builder(config, policy).identity(identity);
    if let Some(root) = root {
        let roots = reqwest::Certificate::from_pem_bundle(root.as_bytes())
            .map_err(|_| "mtls_root_certificate is not a PEM certificate".to_owned())?;
        builder = builder.tls_certs_only(roots);
    }
    builder.build().map_err(|_| {
        "mtls_client_private_key does not match mtls_client_certificate (or is not a usable key)"
            .to_owned()
    })
}

/// Checks, when a credential is written, that it can be used: the key matches the
/// certificate and every certificate parses.
pub fn check(certificate: &str, key: &SecretString, root: Option<&str>) -> Result<(), String> {
    let config = EgressConfig::default();
    let policy = Arc::new(NetworkPolicy::default());
    client(&config, &policy, certificate, key, root).map(|_| ())
}

impl super::Egress {
    /// The client of an MTLS credential version, built once.
    pub(super) fn mtls_client(
        &self,
        id: i64,
        version: i64,
        certificate: &str,
        key: &SecretString,
        root: Option<&str>,
    ) -> Result<reqwest::Client, EgressError> {
        self.inner
            .identities
            .get_or_insert_with(&(id, version), || {
                client(
                    &self.inner.config,
                    &self.inner.policy,
                    certificate,
                    key,
                    root,
                )
            })
            .map_err(|message| EgressError::Unusable { message })
    }
}

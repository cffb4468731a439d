//! Live clients and the access tokens they are issued: what the token endpoint and
//! `/v1/authenticate` read from memory.
//!
//! An access token is a JWT signed with a server key (the kernel has checked signature and
//! `exp`). It is valid while its api credential is live — deleted or changed credentials are
//! revoked through the feed, so a changed role is what the next verification reports — and
//! while its `jti` is not on the revocation list (`/oauth/revoke`). Both answers come from
//! caches: a token's first verification on a node reads the list once.

use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{CommerceLayer, store::ClientRow};
use crate::crypto::{jwt::JwtAlgorithm, secrets_equal};
use crate::kernel::{
    Kernel, Result,
    issuer::{Issued, SERVER},
    verify::{BoxFuture, CredentialPrincipal, Presented, Verification, Verifier},
};

/// An api credential as the token endpoint and verification need it.
#[derive(Clone)]
pub struct LiveClient {
    pub id: String,
    pub organization_id: String,
    pub organization_slug: String,
    pub client_id: String,
    pub role_id: Option<String>,
    pub role_kind: Option<String>,
    pub kind: String,
    pub confidential: bool,
    pub redirect_uri: Option<String>,
    pub secret_hash: Option<Vec<u8>>,
    pub scopes: String,
    pub expires_in: i64,
    pub test: bool,
    /// What signs its access tokens (the organization's choice).
    pub algorithm: JwtAlgorithm,
    /// A provisioning client's role on the Provisioning API.
    pub access_role: Option<String>,
    /// The secret once it matched `secret_hash`, zeroed when dropped: later requests compare
    /// it in constant time instead of hashing again (as Sunshine keys' secrets are compared
    /// from memory). A changed client is a new `LiveClient`.
    verified_secret: OnceLock<Zeroizing<String>>,
}

impl LiveClient {
    /// Whether `secret` is this client's.
    pub fn secret_matches(&self, kernel: &Kernel, secret: &str) -> bool {
        if let Some(known) = self.verified_secret.get() {
            return secrets_equal(known.as_bytes(), secret.as_bytes());
        }
        let matches = self
            .secret_hash
            .as_ref()
            .is_some_and(|hash| kernel.secret_matches(secret, hash));
        if matches {
            let _ = self.verified_secret.set(Zeroizing::new(secret.to_owned()));
        }
        matches
    }
}

impl std::fmt::Debug for LiveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveClient")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl From<ClientRow> for LiveClient {
    fn from(r: ClientRow) -> Self {
        Self {
            id: r.id,
            organization_id: r.organization_id,
            organization_slug: r.organization_slug,
            client_id: r.client_id,
            role_id: r.role_id,
            role_kind: r.role_kind,
            kind: r.kind,
            confidential: r.confidential,
            redirect_uri: r.redirect_uri,
            secret_hash: r.secret_hash,
            scopes: r.scopes,
            expires_in: r.expires_in,
            test: r.mode == "test",
            algorithm: JwtAlgorithm::parse(&r.token_algorithm).unwrap_or(JwtAlgorithm::RS512),
            access_role: r.access_role,
            verified_secret: OnceLock::new(),
        }
    }
}

impl crate::kernel::Weigh for LiveClient {
    fn weight(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        self.id.len()
            + self.organization_id.len()
            + self.organization_slug.len()
            + self.client_id.len()
            + opt(&self.role_id)
            + opt(&self.role_kind)
            + self.kind.len()
            + opt(&self.redirect_uri)
            + self.secret_hash.as_ref().map_or(0, Vec::len)
            + self.scopes.len()
            // and the secret, once verified
            + 264
    }
}

/// A token id that is not revoked; an authorization-code grant that is not revoked.
pub struct Live;

impl crate::kernel::Weigh for Live {
    fn weight(&self) -> usize {
        0
    }
}

/// `owner` of a token issued through an authorization code: who signed in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwnerClaim {
    pub id: String,
    /// `Customer` or `User`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `application` of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApplicationClaim {
    pub id: String,
    pub kind: String,
    /// A public client kind (sales channel).
    pub public: bool,
    pub client_id: String,
    /// Whether the client authenticated with its secret for this token.
    pub confidential: bool,
}

/// `organization` of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrganizationClaim {
    pub id: String,
    pub slug: String,
    pub enterprise: bool,
    pub region: String,
}

/// `user` of a provisioning token: the provisioning client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserClaim {
    pub id: String,
}

/// An access token's claims, as Commerce Layer's: organization tokens carry `organization`,
/// provisioning tokens `user` instead.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<OrganizationClaim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserClaim>,
    pub application: ApplicationClaim,
    pub scope: String,
    pub test: bool,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub rand: f64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerClaim>,
    /// The authorization-code grant it came from: revoking the grant revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl CommerceLayer {
    /// The live client with this client id (`None`: unknown or deleted).
    pub(super) async fn live_client(&self, client_id: &str) -> Result<Option<Arc<LiveClient>>> {
        // Client ids are 43 base62 characters: nothing else is looked up or cached.
        if !crate::kernel::types::ids::base62(client_id, super::service::CLIENT_ID_LEN) {
            return Ok(None);
        }
        self.clients
            .get(client_id, || async {
                let row = self
                    .kernel
                    .store()
                    .conn()
                    .await?
                    .cl_client(client_id)
                    .await?;
                Ok(row.map(LiveClient::from))
            })
            .await
    }

    /// Whether a token id is not on the revocation list.
    pub(super) async fn token_live(&self, jti: &str) -> Result<bool> {
        let live = self
            .tokens
            .get(jti, || async {
                let revoked = self
                    .kernel
                    .store()
                    .conn()
                    .await?
                    .cl_token_revoked(jti)
                    .await?;
                Ok((!revoked).then_some(Live))
            })
            .await?;
        Ok(live.is_some())
    }

    /// Whether an authorization-code grant still stands.
    pub(super) async fn grant_live(&self, id: &str) -> Result<bool> {
        let live = self
            .grants
            .get(id, || async {
                let row = self
                    .kernel
                    .store()
                    .conn()
                    .await?
                    .cl_authorization(id)
                    .await?;
                Ok(row.filter(|r| r.status == "active").map(|_| Live))
            })
            .await?;
        Ok(live.is_some())
    }

    /// The claims of a token our server key signed, if it is one of ours and still valid;
    /// else why not.
    pub(super) async fn check_token(
        &self,
        issued: &Issued,
    ) -> Result<std::result::Result<(AccessClaims, Arc<LiveClient>), &'static str>> {
        let Ok(claims) = serde_json::from_value::<AccessClaims>(issued.claims.clone()) else {
            return Ok(Err("malformed"));
        };
        let Some(client) = self.live_client(&claims.application.client_id).await? else {
            return Ok(Err("revoked"));
        };
        let other_organization = claims
            .organization
            .as_ref()
            .is_some_and(|o| o.id != client.organization_id);
        if client.id != claims.application.id || other_organization {
            return Ok(Err("revoked"));
        }
        if !self.token_live(&claims.jti).await? {
            return Ok(Err("revoked"));
        }
        if let Some(sid) = &claims.sid
            && !self.grant_live(sid).await?
        {
            return Ok(Err("revoked"));
        }
        Ok(Ok((claims, client)))
    }

    async fn verify_issued(&self, issued: &Issued) -> Result<Verification> {
        let (claims, client) = match self.check_token(issued).await? {
            Ok(ok) => ok,
            Err(code) => return Ok(Verification::invalid(code)),
        };
        let mut principal =
            CredentialPrincipal::new("api_credential_token", client.organization_id.clone());
        principal.scope = Some(claims.scope);
        Ok(Verification::valid(
            principal
                .with("api_credential_id", Some(client.id.clone()))
                .with("kind", Some(client.kind.clone()))
                .with("role_id", client.role_id.clone())
                .with("role_kind", client.role_kind.clone())
                .with("test", Some(client.test.to_string()))
                .with("token_id", Some(claims.jti))
                .with("owner_id", claims.owner.as_ref().map(|o| o.id.clone()))
                .with("owner_type", claims.owner.map(|o| o.kind)),
        ))
    }
}

impl Verifier for CommerceLayer {
    fn verify<'a>(
        &'a self,
        presented: &'a Presented<'a>,
    ) -> Option<BoxFuture<'a, Result<Verification>>> {
        match presented {
            Presented::Issued(issued)
                if issued.organization_id == SERVER
                    && issued.claims.get("application").is_some() =>
            {
                Some(Box::pin(self.verify_issued(issued)))
            }
            _ => None,
        }
    }
}

//! The audit log: every change and every failed authentication, written in the same
//! transaction as the change and hash-chained per organization so a removed or edited row
//! is detectable (`latchkey audit verify`). Events name targets by id, never by secret.

use serde::Serialize;

use super::tx::WriteTx;
use super::{Ctx, Kernel, RequestMeta, Result, iso8601, now_ms};
use crate::{
    crypto::AuditKey,
    store::{AuditFilter, AuditRow, Store, StoreError},
};

/// The chain of events that belong to no organization (e.g. an unknown token was presented).
pub const SERVER_CHAIN: &str = "";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// One event before it is chained; ids and hashes are filled in by [`append`].
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub organization_id: Option<&'a str>,
    pub actor: String,
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: Option<String>,
    pub outcome: Outcome,
    pub request_id: Option<&'a str>,
    pub ip: Option<std::net::IpAddr>,
    pub external_id: Option<&'a str>,
    /// Extra facts as a JSON object; never a secret.
    pub detail: Option<serde_json::Value>,
}

impl Kernel {
    /// Checks every audit chain (`latchkey audit verify`).
    pub async fn verify_audit(&self) -> Result<Verification> {
        Ok(verify(self.store(), &self.inner.audit_key).await?)
    }
}

impl<'a> Event<'a> {
    /// A successful action by the caller of `ctx` inside `org`.
    pub fn by(
        ctx: &'a Ctx,
        org: Option<&'a str>,
        action: &'static str,
        target_type: &'static str,
        target_id: impl ToString,
    ) -> Self {
        Self {
            organization_id: org,
            actor: ctx.principal.actor(),
            action,
            target_type,
            target_id: Some(target_id.to_string()),
            outcome: Outcome::Success,
            request_id: ctx.request_id.as_deref(),
            ip: ctx.ip,
            external_id: ctx.external_id.as_deref(),
            detail: None,
        }
    }

    pub fn failed_auth(meta: &'a RequestMeta, org: Option<&'a str>, actor: String) -> Self {
        Self {
            organization_id: org,
            actor,
            action: "auth.failed",
            target_type: "management_token",
            target_id: None,
            outcome: Outcome::Failure,
            request_id: meta.request_id.as_deref(),
            ip: meta.ip,
            external_id: meta.external_id.as_deref(),
            detail: None,
        }
    }
}

/// Appends `event` to its organization's chain inside `tx`.
pub async fn append(tx: &mut WriteTx, event: Event<'_>) -> Result<(), StoreError> {
    let key = tx.audit_key.clone();
    let chain = event.organization_id.unwrap_or(SERVER_CHAIN).to_owned();
    let (seq, prev_hash) = tx.audit_advance(&chain).await?;
    let mut row = AuditRow {
        id: uuid::Uuid::now_v7().to_string(),
        chain,
        seq,
        at: now_ms(),
        organization_id: event.organization_id.map(str::to_owned),
        actor: event.actor,
        action: event.action.to_owned(),
        target_type: event.target_type.to_owned(),
        target_id: event.target_id,
        outcome: match event.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
        .to_owned(),
        request_id: event.request_id.map(str::to_owned),
        ip: event.ip.map(|ip| ip.to_string()),
        external_id: event.external_id.map(str::to_owned),
        detail: event.detail.map(|d| d.to_string()),
        prev_hash,
        hash: String::new(),
    };
    row.hash = keyed_hash(&key, &row);
    tx.audit_append(&row).await
}

/// Marks a hash made with the audit key (events written before it have plain SHA-256).
const KEYED: &str = "k1:";

/// HMAC-SHA256 under the audit key over the same encoding as [`hash`].
fn keyed_hash(key: &AuditKey, row: &AuditRow) -> String {
    format!("{KEYED}{}", key.mac_hex(encoding(row).as_bytes()))
}

/// An unambiguous encoding (a JSON array) of every field but the hash itself. Fields added
/// after the first release join the array only when set, so events written before them keep
/// verifying.
fn encoding(row: &AuditRow) -> String {
    let mut fields = serde_json::json!([
        row.id,
        row.chain,
        row.seq,
        row.at,
        row.organization_id,
        row.actor,
        row.action,
        row.target_type,
        row.target_id,
        row.outcome,
        row.request_id,
        row.ip,
        row.prev_hash,
    ]);
    if let (Some(external_id), Some(array)) = (&row.external_id, fields.as_array_mut()) {
        array.push(serde_json::json!({ "external_id": external_id }));
    }
    if let (Some(detail), Some(array)) = (&row.detail, fields.as_array_mut()) {
        array.push(serde_json::json!({ "detail": detail }));
    }
    fields.to_string()
}

/// Plain SHA-256 of the encoding: how events were chained before the chain was keyed.
fn legacy_hash(row: &AuditRow) -> String {
    crate::crypto::sha256_hex(encoding(row).as_bytes())
}

/// An event as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEventView {
    pub id: String,
    pub at: String,
    pub organization_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<AuditRow> for AuditEventView {
    fn from(r: AuditRow) -> Self {
        Self {
            id: r.id,
            at: iso8601(r.at),
            organization_id: r.organization_id,
            actor: r.actor,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            outcome: r.outcome,
            request_id: r.request_id,
            ip: r.ip,
            external_id: r.external_id,
            detail: r.detail.and_then(|d| serde_json::from_str(&d).ok()),
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// Query of `GET /v1/audit_events`.
#[derive(Debug, Default, Clone)]
pub struct AuditQuery {
    pub organization_id: Option<String>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub after: Option<String>,
    pub limit: Option<i64>,
}

/// The largest page of a native list (`limit`); 50 when not given.
pub const MAX_PAGE: i64 = 200;

/// A native list's `limit`: 1..=[`MAX_PAGE`], 50 when absent.
pub fn page_limit(limit: Option<i64>) -> Result<i64> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(super::CoreError::invalid(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(limit)
}

impl Kernel {
    /// Newest events first; returns the page and the cursor of the next one.
    pub async fn audit_events(
        &self,
        ctx: &Ctx,
        q: AuditQuery,
    ) -> Result<(Vec<AuditEventView>, Option<String>)> {
        let org = ctx.principal.audit_scope(q.organization_id.as_deref())?;
        let limit = page_limit(q.limit)?;
        let filter = AuditFilter {
            organization_id: Some(org),
            action: q.action,
            target_type: q.target_type,
            target_id: q.target_id,
            after: q.after,
            limit: limit + 1,
        };
        let mut rows = self.store().read().await?.audit_events(&filter).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(|r| r.id.clone())
        } else {
            None
        };
        Ok((rows.into_iter().map(Into::into).collect(), next))
    }
}

/// The result of checking every chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    Intact {
        chains: usize,
        events: u64,
    },
    Broken {
        chain: String,
        seq: i64,
        event_id: Option<String>,
        reason: String,
    },
}

/// Re-computes every hash and link, chain by chain, in one consistent snapshot (events being
/// appended meanwhile are not half-seen), and names the first broken link. Hashes are keyed
/// (HMAC under the audit key, sealed by the master key); a chain may start with plain
/// SHA-256 events written before the key existed, but never returns to them.
async fn verify(store: &Store, key: &AuditKey) -> Result<Verification, StoreError> {
    const PAGE: i64 = 1000;
    let mut tx = store.snapshot().await?;
    let chains = tx.audit_chains().await?;
    let mut events = 0u64;
    for (chain, last_seq, head) in &chains {
        let mut expected_prev = String::new();
        let mut expected_seq = 1;
        let mut keyed_seen = false;
        loop {
            let page = tx.audit_chain_page(chain, expected_seq, PAGE).await?;
            let done = (page.len() as i64) < PAGE;
            for row in page {
                let broken = |reason: &str| Verification::Broken {
                    chain: chain.clone(),
                    seq: expected_seq,
                    event_id: Some(row.id.clone()),
                    reason: reason.to_owned(),
                };
                if row.seq != expected_seq {
                    return Ok(broken("an event is missing before this one"));
                }
                if row.prev_hash != expected_prev {
                    return Ok(broken("prev_hash does not match the previous event"));
                }
                let expected = if row.hash.starts_with(KEYED) {
                    keyed_seen = true;
                    keyed_hash(key, &row)
                } else if keyed_seen {
                    return Ok(broken("an unkeyed event follows keyed ones"));
                } else {
                    legacy_hash(&row)
                };
                if !crate::crypto::secrets_equal(expected.as_bytes(), row.hash.as_bytes()) {
                    return Ok(broken("the event was modified after it was written"));
                }
                expected_prev = row.hash;
                expected_seq += 1;
                events += 1;
            }
            if done {
                break;
            }
        }
        if expected_seq - 1 != *last_seq || expected_prev != *head {
            return Ok(Verification::Broken {
                chain: chain.clone(),
                seq: expected_seq,
                event_id: None,
                reason: format!(
                    "the chain ends at {} but its head records {last_seq}",
                    expected_seq - 1
                ),
            });
        }
    }
    Ok(Verification::Intact {
        chains: chains.len(),
        events,
    })
}

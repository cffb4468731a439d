//! The records of credential uses, written by group commit: every use is audited and stamps
//! its credential before the caller gets its answer, but concurrent uses share one write
//! transaction (one fsync) instead of queueing for the database's write lock one by one.
//! One writer task takes whatever is waiting, writes it all, and answers every waiter.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::{
    egress::Use,
    kernel::{
        CoreError, Ctx, Kernel, Result,
        audit::{self, Event, Outcome},
        now_ms,
    },
};

/// Most uses written in one transaction.
const MAX_BATCH: usize = 512;

/// One use, owned, ready to be written.
struct Record {
    org: String,
    actor: String,
    request_id: Option<String>,
    ip: Option<std::net::IpAddr>,
    external_id: Option<String>,
    credential_id: i64,
    /// The fetch error kept on the credential, if any.
    error: Option<String>,
    failed: bool,
    detail: Value,
    at: i64,
}

struct Pending {
    records: Vec<Record>,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

/// Where uses are sent to be written.
#[derive(Default)]
pub struct Recorder {
    /// The writer's queue; replaced if the writer has stopped (a panic in a write).
    queue: Mutex<Option<mpsc::Sender<Pending>>>,
}

impl Recorder {
    /// Writes the records of `uses` (by the caller of `ctx`, through `via`), and returns once
    /// they are committed.
    pub async fn record(
        &self,
        kernel: &Kernel,
        ctx: &Ctx,
        org: &str,
        via: &'static str,
        uses: Vec<Use>,
    ) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let at = now_ms();
        let records = uses
            .into_iter()
            .map(|u| {
                let mut detail = json!({ "mode": u.credential.mode, "via": via });
                if !u.host.is_empty() {
                    detail["host"] = json!(u.host);
                }
                if let Some(reason) = &u.failure {
                    detail["reason"] = json!(reason);
                }
                Record {
                    org: org.to_owned(),
                    actor: ctx.principal.actor(),
                    request_id: ctx.request_id.clone(),
                    ip: ctx.ip,
                    external_id: ctx.external_id.clone(),
                    credential_id: u.credential.id,
                    error: u.failure.clone().filter(|_| u.fetch_failed),
                    failed: u.failure.is_some(),
                    detail,
                    at,
                }
            })
            .collect();
        let queue = {
            let mut slot = self
                .queue
                .lock()
                .map_err(|_| CoreError::Internal("the use recorder is poisoned".into()))?;
            match slot.as_ref() {
                Some(queue) if !queue.is_closed() => queue.clone(),
                _ => slot.insert(spawn_writer(kernel.clone())).clone(),
            }
        };
        let (done, wait) = oneshot::channel();
        queue
            .send(Pending { records, done })
            .await
            .map_err(|_| CoreError::Internal("the use recorder stopped".into()))?;
        wait.await
            .map_err(|_| CoreError::Internal("the use recorder stopped".into()))?
            .map_err(CoreError::Internal)
    }
}

fn spawn_writer(kernel: Kernel) -> mpsc::Sender<Pending> {
    let (queue, mut incoming) = mpsc::channel::<Pending>(4096);
    tokio::spawn(async move {
        while let Some(first) = incoming.recv().await {
            let mut batch = vec![first];
            let mut count = batch[0].records.len();
            while count < MAX_BATCH {
                match incoming.try_recv() {
                    Ok(more) => {
                        count += more.records.len();
                        batch.push(more);
                    }
                    Err(_) => break,
                }
            }
            let batch = Arc::new(batch);
            let written = write(&kernel, &batch).await.map_err(|e| e.to_string());
            if let Ok(batch) = Arc::try_unwrap(batch) {
                for pending in batch {
                    let _ = pending.done.send(written.clone());
                }
            }
        }
    });
    queue
}

async fn write(kernel: &Kernel, batch: &[Pending]) -> Result<()> {
    kernel
        .write(async |tx| {
            for r in batch.iter().flat_map(|p| &p.records) {
                tx.mark_credential_used(&r.org, r.credential_id, r.at, r.error.as_deref())
                    .await?;
                let event = Event {
                    organization_id: Some(&r.org),
                    actor: r.actor.clone(),
                    action: "user_credential.use",
                    target_type: "user_credential",
                    target_id: Some(r.credential_id.to_string()),
                    outcome: if r.failed {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    },
                    request_id: r.request_id.as_deref(),
                    ip: r.ip,
                    external_id: r.external_id.as_deref(),
                    detail: Some(r.detail.clone()),
                };
                audit::append(tx, event).await?;
            }
            Ok(())
        })
        .await
}

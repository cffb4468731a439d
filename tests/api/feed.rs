//! The revocation feed, driven by hand: two kernels on one database (as two nodes are), no
//! background polling, so each step is explicit. The real-time cross-node tests (three
//! servers, a revocation seen everywhere within a second) live with each family.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use latchkey::kernel::{Kernel, LiveCache, Weigh};

use crate::{both_engines, helpers::TestApp};

struct Live;

impl Weigh for Live {
    fn weight(&self) -> usize {
        8
    }
}

async fn node(app: &TestApp) -> (Kernel, LiveCache<Live>) {
    let kernel = latchkey::open(&app.config).await.unwrap();
    let cache = kernel.live_cache::<Live>("test_credential", 1 << 20);
    kernel.poll_feed().await.unwrap();
    (kernel, cache)
}

/// Whether `id` is live in `cache`, counting the store reads in `reads`; the store says
/// `stored`.
async fn live(cache: &LiveCache<Live>, id: &str, stored: bool, reads: &AtomicUsize) -> bool {
    cache
        .get(id, || async {
            reads.fetch_add(1, Ordering::SeqCst);
            Ok(stored.then_some(Live))
        })
        .await
        .unwrap()
        .is_some()
}

/// A revocation whose transaction commits after the reader has polled past the moment it
/// began is still seen: numbers are handed out under the head's lock, in commit order.
async fn a_late_commit_is_still_seen(app: TestApp) {
    let (writer, _) = node(&app).await;
    let (reader, cache) = node(&app).await;
    let reads = AtomicUsize::new(0);
    assert!(live(&cache, "late", true, &reads).await);

    // A writer appends its revocation, then takes its time to commit.
    let mut slow = writer.store().write().await.unwrap();
    slow.append_revocations(&[("test_credential", "late", "revoke")])
        .await
        .unwrap();
    // A second writer revokes another id meanwhile: it must queue behind the first.
    let second = tokio::spawn({
        let writer = writer.clone();
        async move {
            let mut tx = writer.store().write().await.unwrap();
            tx.append_revocations(&[("test_credential", "second", "revoke")])
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    reader.poll_feed().await.unwrap();
    assert!(
        live(&cache, "late", true, &reads).await,
        "not committed yet: still live"
    );
    assert!(
        !second.is_finished(),
        "the second writer waits for the first"
    );

    slow.commit().await.unwrap();
    second.await.unwrap();
    reader.poll_feed().await.unwrap();
    assert!(
        !live(&cache, "late", true, &reads).await,
        "the late commit was missed"
    );
    assert!(!live(&cache, "second", true, &reads).await);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        1,
        "loaded once; the tombstones answered after"
    );
}

/// A node that fell behind the retention window (its rows were pruned) cannot know what it
/// missed: it drops every live entry and asks the store again.
async fn a_node_behind_the_retention_drops_its_live_entries(app: TestApp) {
    let (writer, _) = node(&app).await;
    let (reader, cache) = node(&app).await;
    let reads = AtomicUsize::new(0);
    assert!(live(&cache, "kept", true, &reads).await);
    assert!(live(&cache, "gone", true, &reads).await);
    assert_eq!(reads.load(Ordering::SeqCst), 2);

    let mut tx = writer.store().write().await.unwrap();
    tx.append_revocations(&[("test_credential", "gone", "revoke")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Pruned before the reader came back.
    app.execute_sql("DELETE FROM revocations").await;

    reader.poll_feed().await.unwrap();
    assert!(
        !live(&cache, "gone", false, &reads).await,
        "the store is asked again, and it says revoked"
    );
    assert!(live(&cache, "kept", true, &reads).await);
    assert_eq!(reads.load(Ordering::SeqCst), 4, "both were reloaded");
    // From then on the feed continues normally.
    let mut tx = writer.store().write().await.unwrap();
    tx.append_revocations(&[("test_credential", "kept", "revoke")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    reader.poll_feed().await.unwrap();
    assert!(!live(&cache, "kept", true, &reads).await);
}

/// Revocations made through the write transaction reach the writer's own cache at once and
/// the other node's at its next poll; many at once come in order, in batches.
async fn write_transactions_revoke_here_and_there(app: TestApp) {
    let (writer, writer_cache) = node(&app).await;
    let (reader, cache) = node(&app).await;
    let reads = Arc::new(AtomicUsize::new(0));
    let ids: Vec<String> = (0..2500).map(|i| format!("id-{i}")).collect();
    for id in ["id-0", "id-2499"] {
        assert!(live(&cache, id, true, &reads).await);
        assert!(live(&writer_cache, id, true, &reads).await);
    }
    writer
        .write(async |tx| {
            tx.revoke(&writer_cache, ids.clone());
            Ok(())
        })
        .await
        .unwrap();
    assert!(
        !live(&writer_cache, "id-0", true, &reads).await,
        "at once here"
    );
    assert!(live(&cache, "id-2499", true, &reads).await, "not yet there");
    reader.poll_feed().await.unwrap();
    for id in ["id-0", "id-2499"] {
        assert!(!live(&cache, id, true, &reads).await, "{id}");
    }
}

/// Two nodes making their first key for the same organization and algorithm at once end
/// with one active key, which both use.
async fn one_active_signing_key_per_organization_and_algorithm(app: TestApp) {
    use latchkey::crypto::jwt::JwtAlgorithm;
    let (org, _) = app.org_with("admin").await;
    let (a, _) = node(&app).await;
    let (b, _) = node(&app).await;
    for alg in [JwtAlgorithm::ES256, JwtAlgorithm::RS512] {
        let (ka, kb) = tokio::join!(a.signing_key(&org, alg), b.signing_key(&org, alg));
        assert_eq!(ka.unwrap().kid(), kb.unwrap().kid(), "{alg}");
    }
    let jwks = a.jwks(&org).await.unwrap();
    assert_eq!(jwks.keys.len(), 2);
}

both_engines!(
    a_late_commit_is_still_seen,
    a_node_behind_the_retention_drops_its_live_entries,
    write_transactions_revoke_here_and_there,
    one_active_signing_key_per_organization_and_algorithm,
);

/// A cascade delete racing a create under it: a key inserted (and committed) while an app's
/// delete is under way is in the revocation feed, because the delete collects the ids it
/// revokes under the lock that key creation takes.
async fn a_cascade_revokes_what_a_racing_create_added(app: TestApp) {
    use serde_json::json;
    let (org, token) = app.org_with("admin").await;
    let (status, created) = app
        .post("/v1/account_keys", &token, json!({ "displayName": "ops" }))
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
    let key = &created["key"];
    let sunshine = app.sunshine_basic(key["id"].as_str().unwrap(), key["secret"].as_str().unwrap());
    let (_, made) = sunshine
        .post("/apps", json!({ "displayName": "racing" }))
        .await;
    let app_id = made["app"]["id"].as_str().unwrap().to_owned();

    // A key creation under the app, holding its lock, not yet committed…
    let mut creating = app.latchkey.store().write().await.unwrap();
    creating.lock_app(&org, &app_id).await.unwrap();
    let late = format!(
        "app_{}",
        uuid::Uuid::new_v4().simple().to_string().get(..24).unwrap()
    );
    let row = latchkey::sunshine::store::KeyRow {
        id: late.clone(),
        organization_id: org.clone(),
        scope: "app".to_owned(),
        app_id: Some(app_id.clone()),
        integration_id: None,
        display_name: "late".to_owned(),
        secret: vec![0; 32],
        created_at: 0,
    };
    creating.insert_key(&row).await.unwrap();
    // …while the app is deleted.
    let deleting = {
        let sunshine = sunshine.clone();
        let path = format!("/apps/{app_id}");
        tokio::spawn(async move { sunshine.delete(&path).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    creating.commit().await.unwrap();
    let (status, body) = deleting.await.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    let revoked = app
        .query_i64(&format!(
            "SELECT COUNT(*) FROM revocations WHERE kind = 'api_key' AND id = '{late}'"
        ))
        .await;
    assert_eq!(revoked, 1, "the key the cascade removed is in the feed");
}

both_engines!(a_cascade_revokes_what_a_racing_create_added);

/// The feed is read on schedule while a prune waits for a lock: polls and prunes run in loops
/// of their own, so a prune stuck behind a long write cannot let the feed go stale (which
/// would send every verification of this node to the store).
async fn a_waiting_prune_does_not_hold_up_the_polls(app: TestApp) {
    let (kernel, cache) = node(&app).await;
    let reads = AtomicUsize::new(0);
    assert!(live(&cache, "steady", true, &reads).await);

    // Hold what a prune needs: SQLite's one writer; on PostgreSQL, a lock on the feed's table
    // that lets reads through but not deletes.
    let mut holder = kernel.store().write().await.unwrap();
    if let latchkey::store::Tx::Postgres(tx) = &mut holder {
        sqlx::query("LOCK TABLE revocations IN SHARE MODE")
            .execute(&mut **tx)
            .await
            .unwrap();
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn({
        let kernel = kernel.clone();
        async move { kernel.follow_feed(stopped).await }
    });
    // Longer than the feed may go unread (1 s) before live entries stop counting; the prune
    // starts at once and waits all along.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    assert!(live(&cache, "steady", true, &reads).await);
    assert_eq!(
        reads.load(Ordering::SeqCst),
        1,
        "the feed was read all along, so the live entry still counted"
    );

    drop(holder);
    stop.send(true).unwrap();
    follower.await.unwrap();
}

both_engines!(a_waiting_prune_does_not_hold_up_the_polls);

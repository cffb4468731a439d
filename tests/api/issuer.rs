//! The kernel's JWT issuer: rotation keeps issued tokens verifying while their key is
//! published, and a retired key leaves the JWK Set when its last token has expired.

use latchkey::crypto::jwt::{JwtAlgorithm, decode_header};
use serde_json::json;

use crate::{both_engines, helpers::TestApp};

async fn published_kids(kernel: &latchkey::Kernel, org: &str) -> Vec<String> {
    let jwks = kernel.jwks(org).await.unwrap();
    jwks.keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect()
}

async fn rotation_keeps_old_tokens_verifying(app: TestApp) {
    let (org, _) = app.org_with("admin").await;
    let kernel = &app.latchkey;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({ "sub": "x", "exp": now + 300 });
    for alg in [
        JwtAlgorithm::RS512,
        JwtAlgorithm::ES384,
        JwtAlgorithm::EdDSA,
    ] {
        let old = kernel.issue(&org, alg, &claims).await.unwrap();
        let old_kid = decode_header(&old).unwrap().kid.unwrap();
        let new_key = kernel
            .rotate_signing_key(&org, alg, Some(std::time::Duration::from_secs(300)))
            .await
            .unwrap();
        assert_ne!(new_key.kid(), old_kid, "{alg}");
        let new = kernel.issue(&org, alg, &claims).await.unwrap();
        assert_eq!(
            decode_header(&new).unwrap().kid.as_deref(),
            Some(new_key.kid())
        );
        for token in [&old, &new] {
            let kid = decode_header(token).unwrap().kid.unwrap();
            let issued = kernel.verify_issued(token, &kid).await.unwrap().unwrap();
            assert_eq!(issued.organization_id, org);
        }
        let kids = published_kids(kernel, &org).await;
        assert!(kids.contains(&old_kid) && kids.contains(&new_key.kid().to_owned()));
        // Once the old key's last token can have expired, it is no longer published.
        app.execute_sql(&format!(
            "UPDATE signing_keys SET published_until = 1 WHERE kid = '{old_kid}'"
        ))
        .await;
        let kids = published_kids(kernel, &org).await;
        assert!(
            !kids.contains(&old_kid),
            "{alg}: a retired key stayed published"
        );
        // …and verifies nothing: at once on a node that had not cached it (others within
        // the issuer cache's ten minutes).
        let other = latchkey::open(&app.config).await.unwrap();
        assert!(
            other.verify_issued(&old, &old_kid).await.unwrap().is_err(),
            "{alg}: a retired, unpublished key still verifies"
        );
        assert!(kids.contains(&new_key.kid().to_owned()));
    }
    // A kid that is not a thumbprint is refused before any lookup.
    let forged = format!("{}.e30.sig", "eyJhbGciOiJSUzI1NiJ9");
    assert!(
        kernel
            .verify_issued(&forged, &"x".repeat(70_000))
            .await
            .unwrap()
            .is_err()
    );
}

both_engines!(rotation_keeps_old_tokens_verifying);

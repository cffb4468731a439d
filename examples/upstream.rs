//! The upstream of the egress benchmark (`bench/egress.sh`), and its floor: a bare axum
//! server answering every request with a small JSON body, and `POST /token` with an OAuth
//! token answer (a long `expires_in`, so the proxy's cached-token path is what is measured).
//!
//!   upstream 127.0.0.1:18090

use axum::{Json, Router, routing::post};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".to_owned());
    let app = Router::new()
        .route(
            "/token",
            post(|| async {
                Json(json!({"access_token": "bench-access-token", "expires_in": 86400}))
            }),
        )
        .fallback(|| async { Json(json!({"ok": true, "items": [1, 2, 3]})) });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

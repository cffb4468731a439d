//! The floor of the `/v1/authenticate` benchmark (`bench/run.sh`): a bare axum server on the
//! same runtime as Latchkey that reads the request body and answers `POST /v1/authenticate`
//! with a fixed body — one that Latchkey itself sent for the same request, so both responses
//! are the same size. Nothing is parsed, looked up or verified: what is left is HTTP.
//!
//!   cargo run --release --example bare -- 127.0.0.1:18091 BODY_FILE

use axum::{Router, body::Bytes, http::header, routing::post};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18091".to_owned());
    let body: &'static [u8] = match args.next() {
        Some(file) => std::fs::read(file)?.leak(),
        None => br#"{"valid":true}"#,
    };
    let app =
        Router::new().route(
            "/v1/authenticate",
            post(move |_request: Bytes| async move {
                ([(header::CONTENT_TYPE, "application/json")], body)
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

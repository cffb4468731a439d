//! The raw signing rate of the server's own key: the baseline of the token-endpoint
//! benchmark (`bench/token.sh`). Opens the store the server uses (same `LATCHKEY_*`
//! settings, same master key), loads the active server key of one algorithm — the key that
//! signs `/oauth/token`'s access tokens — and signs claims shaped like theirs in a loop on
//! one thread, for a number of seconds. Prints signatures per second.
//!
//!   sign_rate RS512 5

use std::time::{Duration, Instant};

use latchkey::{crypto::jwt::JwtAlgorithm, kernel::issuer::SERVER};
use serde_json::json;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let algorithm = args.next().unwrap_or_else(|| "RS512".to_owned());
    let seconds: u64 = args.next().map_or(Ok(5), |s| s.parse())?;
    let algorithm = JwtAlgorithm::parse(&algorithm).ok_or("unknown algorithm")?;
    let config = latchkey::Config::load(None, std::env::vars())?;
    let kernel = latchkey::open(&config).await?;
    let key = kernel.signing_key(SERVER, algorithm).await?;
    let claims = json!({
        "organization": { "id": "bEnChOrG00", "slug": "bench", "enterprise": false, "region": "eu-west-1" },
        "application": { "id": "bEnChApP00", "kind": "integration", "public": false,
                         "client_id": "x".repeat(43), "confidential": true },
        "scope": "market:all", "test": true, "iat": 1_764_000_000, "exp": 1_764_007_200,
        "iss": "http://127.0.0.1:8080", "rand": 0.123_456_789, "jti": "y".repeat(22),
    });
    let until = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut signed = 0u64;
    while Instant::now() < until {
        for _ in 0..16 {
            std::hint::black_box(key.sign(&claims)?);
        }
        signed += 16;
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = signed as f64 / start.elapsed().as_secs_f64();
    println!("{rate:.0}");
    Ok(())
}

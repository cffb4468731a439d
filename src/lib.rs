//! Latchkey: a self-hosted credentials service.
//!
//! This crate root builds the server: [`Config`] → [`open`] (store, keyring: the
//! [`Kernel`]) → [`Server`] (the families and the router) → [`Server::run`] on a listener
//! until a shutdown signal. `main.rs` is a thin CLI over these; tests build the same server
//! on port 0.
//!
//! Layout (dependencies point downward only): `server` → the families (`pingone`,
//! `sunshine`, `tines`; they never import each other) → `kernel` → `crypto`, `store`.

pub mod commercelayer;
pub mod config;
pub mod crypto;
pub mod egress;
pub mod kernel;
pub mod pingone;
pub mod server;
pub mod store;
pub mod sunshine;
pub mod tines;

use std::{future::Future, net::SocketAddr, sync::OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

pub use config::Config;
use config::{DatabaseUrl, MasterKeySource};
use crypto::keyring::MasterKey;
pub use kernel::Kernel;
use kernel::{OpenError, http::PublicUrl};
use store::Store;

/// Why the server could not start; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("master key: {0}")]
    MasterKey(#[from] crypto::keyring::KeyError),
    #[error("cannot open the database at {url}: {source}")]
    Database {
        url: String,
        source: store::StoreError,
    },
    #[error("{0}")]
    Open(#[from] OpenError),
    #[error(
        "the master key file {path} was missing, but the database holds data sealed under a \
         master key: restore that key file (or set LATCHKEY_MASTER_KEY) and start again"
    )]
    MissingKeyFile { path: String },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Loads the master key the config points at; `true` when a new key file was just created.
pub fn master_key(config: &Config) -> Result<(MasterKey, bool), StartError> {
    Ok(match &config.master_key {
        MasterKeySource::Inline(b64) => (MasterKey::from_base64(b64.expose_secret())?, false),
        MasterKeySource::File(path) => MasterKey::load_or_create_file(path)?,
    })
}

/// Creates the data directory (key file, SQLite files) readable by this user only, unless it
/// exists already (then its permissions are the operator's choice).
fn private_data_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens the store named by the config, migrates it and unlocks the keyring.
pub async fn open(config: &Config) -> Result<Kernel, StartError> {
    let uses_data_dir = matches!(config.database, DatabaseUrl::Sqlite(_))
        || matches!(config.master_key, MasterKeySource::File(_));
    if uses_data_dir {
        private_data_dir(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
    }
    let (master, created) = master_key(config)?;
    let new_key_file = match &config.master_key {
        MasterKeySource::File(path) if created => Some(path),
        _ => None,
    };
    if let Some(path) = new_key_file {
        tracing::warn!(
                path = %path.display(),
                "no master key was configured: generated one and wrote it to this file (mode 0600). \
                 Back it up; without it the sealed secrets cannot be read. Set LATCHKEY_MASTER_KEY in production."
        );
    }
    let store = match &config.database {
        DatabaseUrl::Sqlite(path) => Store::sqlite(path).await,
        DatabaseUrl::Postgres(url) => Store::postgres(url).await,
    }
    .map_err(|source| StartError::Database {
        url: config.database.redacted(),
        source,
    })?;
    let opened = Kernel::open(store, &master, config.auth_failure_limit).await;
    // The database was made under another key and the key file is gone: the key just
    // generated is useless, so it must not stay behind looking like the real one.
    if let (Err(OpenError::WrongMasterKey), Some(path)) = (&opened, new_key_file) {
        let _ = std::fs::remove_file(path);
        return Err(StartError::MissingKeyFile {
            path: path.display().to_string(),
        });
    }
    Ok(opened?)
}

/// The process-wide Prometheus recorder (a recorder can be installed once per process).
/// Durations are histograms with fixed buckets, so a series costs the same however many
/// samples it has seen once the recorder's upkeep has folded them in. Until then each sample
/// waits in a queue (~8 bytes), so `Server::run` runs the upkeep every second
/// (`METRICS_UPKEEP_INTERVAL`).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    /// Seconds: from a cached verification (~100 µs) to a slow store write.
    const BUCKETS: &[f64] = &[
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ];
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let recorder = builder
                .set_buckets(BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A server ready to run: the kernel, the families and the router.
pub struct Server {
    kernel: Kernel,
    families: server::Families,
    app: server::App,
}

impl Server {
    /// Fails only when the outbound HTTP client cannot be built (no TLS roots).
    pub fn new(kernel: Kernel, config: &Config) -> Result<Self, egress::EgressError> {
        let public_url = PublicUrl(config.public_url.as_deref().map(Into::into));
        let egress = egress::Egress::new(config.egress.clone())?;
        let mut families = server::Families::new(&kernel, &public_url, &egress);
        families.commercelayer = families
            .commercelayer
            .with_token_rate_limit(config.token_rate_limit);
        Ok(Self {
            app: server::app(
                &kernel,
                &families,
                metrics_handle(),
                config.body_limit,
                &config.throttle,
            ),
            kernel,
            families,
        })
    }

    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    pub fn families(&self) -> &server::Families {
        &self.families
    }

    /// Serves on `listener` until `shutdown` completes, then drains in-flight requests and
    /// writes what is still pending (credential `lastUsedAt` stamps).
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // Background upkeep: follow the revocation feed, batch the usage stamps, prune limits.
        let feed = tokio::spawn({
            let kernel = self.kernel.clone();
            let stopped = stopped.clone();
            async move { kernel.follow_feed(stopped).await }
        });
        let upkeep = tokio::spawn({
            let (kernel, pingone, commercelayer, mut stopped) = (
                self.kernel.clone(),
                self.families.pingone.clone(),
                self.families.commercelayer.clone(),
                stopped,
            );
            let metrics = metrics_handle();
            async move {
                let mut flush = tokio::time::interval(USAGE_FLUSH_INTERVAL);
                let mut prune = tokio::time::interval(LIMITER_PRUNE_INTERVAL);
                let mut fold = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
                loop {
                    tokio::select! {
                        _ = fold.tick() => metrics.run_upkeep(),
                        _ = flush.tick() => if let Err(e) = pingone.flush_usage().await {
                            tracing::warn!(error = %e, "could not record credential use");
                        },
                        _ = prune.tick() => {
                            kernel.upkeep();
                            if let Err(e) = kernel.record_suppressed_failures().await {
                                tracing::warn!(error = %e, "could not audit rate-limited failures");
                            }
                            if let Err(e) = commercelayer.upkeep().await {
                                tracing::warn!(error = %e, "could not prune expired OAuth records");
                            }
                        }
                        _ = stopped.changed() => break,
                    }
                }
            }
        });
        let app = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
            SocketAddr,
        >(self.app);
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = stop.send(true);
        let _ = feed.await;
        let _ = upkeep.await;
        if let Err(e) = self.families.pingone.flush_usage().await {
            tracing::warn!(error = %e, "could not record credential use at shutdown");
        }
        self.kernel.store().close().await;
        served
    }
}

/// How often pending `lastUsedAt` stamps are written: one batch instead of a write per use.
const USAGE_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);
/// How often rate-limiter keys that have fully replenished are forgotten.
const LIMITER_PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// How often the metrics recorder folds the queued duration samples into its histograms. At
/// 60 s, 60,000 requests/s queued ~30 MB of samples, folded in one go on a runtime thread;
/// each second it is ~0.5 MB.
const METRICS_UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Binds the configured address.
pub async fn bind(config: &Config) -> Result<TcpListener, StartError> {
    TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

//! `TestApp`: the real server on port 0 over a fresh database (an SQLite file in a temp dir,
//! or a PostgreSQL database cloned from a migrated template on `LATCHKEY_TEST_DATABASE_URL`'s
//! server and dropped afterwards, see `postgres`), with typed clients of each surface (`api`).

use std::{
    io::Write,
    path::PathBuf,
    sync::{Arc, Mutex, OnceLock},
};

use latchkey::{Config, Kernel, Server};
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

mod api;
mod postgres;

pub use api::{Api, Auth};

/// Runs each named `async fn(TestApp)` once per engine, as `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::TestApp::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = $crate::helpers::TestApp::postgres().await {
                    super::$name(app).await
                }
            }
        }
    )*};
}

/// Runs each named `async fn(TestApp)` on SQLite only, as `<name>::sqlite`: for tests whose
/// subject never depends on the engine (request parsing that fails before the store, routing,
/// error envelopes, headers, the OpenAPI document), where a PostgreSQL run proves nothing more.
/// A test that asserts what the store holds, counts, cascades, races, revokes or audits stays
/// in `both_engines!`.
#[macro_export]
macro_rules! one_engine {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::TestApp::sqlite().await).await
            }
        }
    )*};
}

/// Everything the server logs in this test process, to prove secrets never reach it.
static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = self.0.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = LogWriter(buffer.clone());
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter("debug")
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    });
}

/// The log output captured so far.
pub fn logs() -> String {
    LOGS.get()
        .map(|b| String::from_utf8_lossy(&b.lock().unwrap()).into_owned())
        .unwrap_or_default()
}

pub enum Engine {
    Sqlite(PathBuf),
    Postgres {
        admin_url: String,
        name: String,
        url: String,
    },
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// A server-admin token.
    pub admin: String,
    pub latchkey: Kernel,
    pub engine: Engine,
    pub config: Config,
    /// Holds the SQLite file and key file; removed when the app is dropped.
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub fn master_key_b64() -> String {
    let key = latchkey::crypto::keyring::MasterKey::generate().unwrap();
    key.to_base64().expose_secret().to_owned()
}

impl TestApp {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.db");
        let env = vec![
            (
                "LATCHKEY_DATABASE_URL".to_owned(),
                format!("sqlite://{}", path.display()),
            ),
            ("LATCHKEY_MASTER_KEY".to_owned(), master_key_b64()),
        ];
        Self::start(dir, Engine::Sqlite(path), env).await
    }

    /// On SQLite, with more settings (`LATCHKEY_…` names and values).
    pub async fn sqlite_with(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.db");
        let mut env = vec![
            (
                "LATCHKEY_DATABASE_URL".to_owned(),
                format!("sqlite://{}", path.display()),
            ),
            ("LATCHKEY_MASTER_KEY".to_owned(), master_key_b64()),
        ];
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Self::start(dir, Engine::Sqlite(path), env).await
    }

    /// None (and a note on stderr) when `LATCHKEY_TEST_DATABASE_URL` is not set.
    pub async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var("LATCHKEY_TEST_DATABASE_URL") else {
            eprintln!(
                "skipped: LATCHKEY_TEST_DATABASE_URL is not set, so the PostgreSQL variant did not run"
            );
            return None;
        };
        let admin_url = postgres::plain_on_loopback(&admin_url);
        let (name, url) = postgres::create_database(&admin_url).await;
        let env = vec![
            ("LATCHKEY_DATABASE_URL".to_owned(), url.clone()),
            ("LATCHKEY_MASTER_KEY".to_owned(), master_key_b64()),
        ];
        let dir = tempfile::tempdir().unwrap();
        Some(
            Self::start(
                dir,
                Engine::Postgres {
                    admin_url,
                    name,
                    url,
                },
                env,
            )
            .await,
        )
    }

    async fn start(dir: tempfile::TempDir, engine: Engine, env: Vec<(String, String)>) -> Self {
        init_logs();
        let mut env = env;
        env.push((
            "LATCHKEY_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ));
        env.push(("LATCHKEY_LISTEN".to_owned(), "127.0.0.1:0".to_owned()));
        // Upstreams in tests are on loopback; `sqlite_with` can set a stricter policy.
        if !env
            .iter()
            .any(|(k, _)| k == "LATCHKEY_EGRESS_ALLOW_NETWORKS")
        {
            env.push((
                "LATCHKEY_EGRESS_ALLOW_NETWORKS".to_owned(),
                "127.0.0.0/8,::1/128".to_owned(),
            ));
        }
        let config = Config::load(None, env).unwrap();
        let mut app = Self {
            base: String::new(),
            client: reqwest::Client::new(),
            admin: String::new(),
            latchkey: latchkey::open(&config).await.unwrap(),
            engine,
            config,
            _dir: dir,
            shutdown: None,
            server: None,
        };
        app.admin = app
            .latchkey
            .create_admin_token("test", false)
            .await
            .unwrap()
            .unwrap()
            .expose_secret()
            .to_owned();
        app.serve().await;
        app
    }

    async fn serve(&mut self) {
        let listener = latchkey::bind(&self.config).await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server = Server::new(self.latchkey.clone(), &self.config).unwrap();
        self.server = Some(tokio::spawn(async move {
            server
                .run(listener, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        }));
        self.shutdown = Some(tx);
    }

    /// Another server process on the same database and master key: (its base URL, its stop).
    pub async fn another_node(&self) -> (String, tokio::sync::oneshot::Sender<()>) {
        let latchkey = latchkey::open(&self.config).await.unwrap();
        let listener = latchkey::bind(&self.config).await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server = Server::new(latchkey, &self.config).unwrap();
        tokio::spawn(async move {
            let _ = server
                .run(listener, async {
                    let _ = rx.await;
                })
                .await;
        });
        (base, tx)
    }

    /// Stops the server and closes the store (what a process exit does).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }

    /// Stops, then opens the same database again with the same config, as a restart does.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.latchkey = latchkey::open(&self.config).await.unwrap();
        self.serve().await;
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        (status, api::parse_body(&res.text().await.unwrap()))
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }
    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::PUT, path, Some(token), Some(body))
            .await
    }
    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    /// `POST /v1/authenticate` on the node at `base` with the management `token`: the verdict
    /// for `presented` (an `Authorization` value or a bare token).
    pub async fn verify_at(&self, base: &str, token: &str, presented: &str) -> Value {
        let res = self
            .client
            .post(format!("{base}/v1/authenticate"))
            .bearer_auth(token)
            .json(&json!({ "authorization": presented }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    /// [`Self::verify_at`] this node.
    pub async fn verify(&self, token: &str, presented: &str) -> Value {
        self.verify_at(&self.base, token, presented).await
    }

    /// A new organization and a token of `role` in it: (organization id, token).
    pub async fn org_with(&self, role: &str) -> (String, String) {
        let name = format!("Org {}", uuid::Uuid::new_v4().simple());
        let (status, org) = self
            .post("/v1/organizations", &self.admin, json!({ "name": name }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{org}");
        let org_id = org["id"].as_str().unwrap().to_owned();
        let token = self.token(&org_id, role, None).await;
        (org_id, token)
    }

    pub async fn token(&self, org_id: &str, role: &str, team_id: Option<i64>) -> String {
        let body =
            json!({ "organization_id": org_id, "name": "t", "role": role, "team_id": team_id });
        let (status, created) = self.post("/v1/tokens", &self.admin, body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["token"].as_str().unwrap().to_owned()
    }

    pub async fn team(&self, token: &str, name: &str) -> i64 {
        let (status, team) = self
            .post("/api/v1/teams", token, json!({ "name": name }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{team}");
        team["id"].as_i64().unwrap()
    }

    /// Every byte the database holds, as text: the SQLite files, or every PostgreSQL row.
    pub async fn raw_database(&self) -> String {
        match &self.engine {
            Engine::Sqlite(path) => {
                let mut all = Vec::new();
                for suffix in ["", "-wal", "-shm"] {
                    let file = PathBuf::from(format!("{}{suffix}", path.display()));
                    if let Ok(bytes) = std::fs::read(file) {
                        all.extend(bytes);
                    }
                }
                String::from_utf8_lossy(&all).into_owned()
            }
            Engine::Postgres { url, .. } => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                let mut all = String::new();
                for table in tables {
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT row_to_json(t)::text FROM {table} t"
                    )))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                    all.push_str(&rows.join("\n"));
                }
                pool.close().await;
                all
            }
        }
    }

    /// Runs one SQL statement directly against the database (to simulate tampering).
    /// The one integer `sql` selects (a count, say), on this test's database.
    pub async fn query_i64(&self, sql: &str) -> i64 {
        match &self.engine {
            Engine::Sqlite(path) => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                n
            }
            Engine::Postgres { url, .. } => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                let n = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                n
            }
        }
    }

    pub async fn execute_sql(&self, sql: &str) {
        match &self.engine {
            Engine::Sqlite(path) => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
            Engine::Postgres { url, .. } => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
    }
}

/// Asserts that `secret` (and its hex and base64 forms) appears nowhere in `haystack`.
pub fn assert_absent(haystack: &str, secret: &str, place: &str) {
    use base64::Engine as _;
    assert!(!haystack.contains(secret), "a secret appeared in {place}");
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(
        !haystack.contains(&hex),
        "a secret appeared hex-encoded in {place}"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    assert!(
        !haystack.contains(b64.trim_end_matches('=')),
        "a secret appeared base64-encoded in {place}"
    );
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Engine::Postgres {
            admin_url, name, ..
        } = &self.engine
        {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime; a fresh thread with its own runtime can block.
            // FORCE ends the server's own connections.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    if let Ok(pool) = sqlx::PgPool::connect(&admin_url).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&pool)
                        .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

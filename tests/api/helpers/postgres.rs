//! One PostgreSQL database per test, cloned from a template that holds the migrations.
//!
//! nextest runs every test in its own process, so "migrate once per run" is coordinated on the
//! server: the template is named after a hash of `migrations/postgres/*.sql`
//! (`latchkey_tpl_<16 hex>`), and whoever finds it missing builds it under an advisory lock
//! while the others wait. A built template refuses connections, so nothing can hold it open
//! and make `CREATE DATABASE … TEMPLATE` fail. The server still runs its migrations on the
//! clone at start: they are a no-op, which proves the template is current.
//!
//! Test databases are named `latchkey_test_<unix secs>_<8 hex>`; each test drops its own
//! (see `TestApp`'s `Drop`), and the first test of each process sweeps what killed runs
//! left behind.

use std::{
    path::Path,
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The advisory lock under which a template is built and stale databases are swept
/// ("latchkey" in ASCII; any key no other program on the server uses).
const LOCK: i64 = 0x6c61_7463_686b_6579;
/// A test database older than this, or a template of other migrations unused for this long,
/// is left over.
const STALE_AFTER_SECS: u64 = 3600;
const TEST_PREFIX: &str = "latchkey_test_";
const TEMPLATE_PREFIX: &str = "latchkey_tpl_";

/// Creates a fresh, migrated database for one test: (name, URL).
pub(super) async fn create_database(admin_url: &str) -> (String, String) {
    let template = template_name();
    let mut admin = PgConnection::connect(admin_url)
        .await
        .expect("LATCHKEY_TEST_DATABASE_URL must be reachable");
    ensure_template(&mut admin, admin_url, template).await;
    static MARKED: AtomicBool = AtomicBool::new(false);
    if !MARKED.swap(true, Ordering::SeqCst) {
        // Processes marking at once may collide ("tuple concurrently updated"): one is enough.
        try_execute(&mut admin, &mark_used(template)).await;
    }
    sweep_once(&mut admin, template).await;
    let name = test_database_name(unix_now());
    clone_template(&mut admin, admin_url, template, &name).await;
    let _ = admin.close().await;
    let url = database_url(admin_url, &name);
    (name, url)
}

/// `latchkey_test_<unix secs>_<8 hex>`: the name says when it was made, for the sweep.
fn test_database_name(now: u64) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{TEST_PREFIX}{now}_{}", &suffix[..8])
}

/// When a test database was made, as its name says (None for another harness's names).
fn created_at(name: &str) -> Option<u64> {
    let (secs, _) = name.strip_prefix(TEST_PREFIX)?.split_once('_')?;
    secs.parse().ok()
}

/// `latchkey_tpl_` and the first 16 hex digits of a SHA-256 over the migration files (name,
/// length, contents, in name order), read from the source tree at test time.
fn template_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        let mut hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for file in files {
            let contents = std::fs::read(&file).unwrap();
            hash.update(file.file_name().unwrap().as_encoded_bytes());
            hash.update(&(contents.len() as u64).to_le_bytes());
            hash.update(&contents);
        }
        let hex: String = hash.finish().as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{TEMPLATE_PREFIX}{hex}")
    })
}

/// Builds the template unless it is there and complete (marked as a template, which is the
/// last step: one a crashed run left half-built is not, and is built again).
async fn ensure_template(admin: &mut PgConnection, admin_url: &str, template: &str) {
    if is_template(admin, template).await {
        return;
    }
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK)
        .execute(&mut *admin)
        .await
        .unwrap();
    // Another process may have built it while this one waited.
    if !is_template(admin, template).await {
        execute(
            admin,
            &format!("DROP DATABASE IF EXISTS {template} WITH (FORCE)"),
        )
        .await;
        execute(admin, &format!("CREATE DATABASE {template}")).await;
        let store = latchkey::store::Store::postgres(&database_url(admin_url, template))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store.close().await;
        execute(admin, &mark_used(template)).await;
        execute(
            admin,
            &format!("ALTER DATABASE {template} WITH ALLOW_CONNECTIONS false IS_TEMPLATE true"),
        )
        .await;
    }
    unlock(admin).await;
}

/// The template's comment says when a run last used it, for the sweeps of runs on other
/// migrations (another branch, on the same server).
fn mark_used(template: &str) -> String {
    format!(
        "COMMENT ON DATABASE {template} IS 'latchkey test template, last used {}'",
        unix_now()
    )
}

/// The time `mark_used` wrote.
fn last_used(comment: &str) -> Option<u64> {
    comment.rsplit_once(' ')?.1.parse().ok()
}

async fn is_template(admin: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT datistemplate FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut *admin)
        .await
        .unwrap()
        .unwrap_or(false)
}

/// `CREATE DATABASE name TEMPLATE template`, again after a short sleep while another session
/// still holds the template (the builder's connections closing), and after building the
/// template again if a run on other migrations swept it meanwhile.
async fn clone_template(admin: &mut PgConnection, admin_url: &str, template: &str, name: &str) {
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        let sql = format!("CREATE DATABASE {name} TEMPLATE {template}");
        let Err(e) = sqlx::query(AssertSqlSafe(sql)).execute(&mut *admin).await else {
            return;
        };
        let code = e
            .as_database_error()
            .and_then(|db| db.code())
            .map(|c| c.into_owned());
        match code.as_deref() {
            // object_in_use: "source database … is being accessed by other users".
            Some("55006") if attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // invalid_catalog_name: the template does not exist.
            Some("3D000") if attempt < ATTEMPTS => {
                ensure_template(admin, admin_url, template).await;
            }
            _ => panic!("CREATE DATABASE {name} TEMPLATE {template}: {e}"),
        }
    }
}

/// Once per process, unless another process holds the lock (it is building or sweeping):
/// drops test databases over an hour old, and templates of other migrations no run has used
/// for an hour (so two branches on one server do not drop each other's on every run).
/// Failures are ignored: a database still in use stays.
async fn sweep_once(admin: &mut PgConnection, template: &str) {
    static SWEPT: AtomicBool = AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK)
        .fetch_one(&mut *admin)
        .await
        .unwrap();
    if !locked {
        return;
    }
    let now = unix_now();
    let old = |at: u64| at + STALE_AFTER_SECS < now;
    let databases: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT datname::text, shobj_description(oid, 'pg_database') FROM pg_database \
         WHERE datname LIKE 'latchkey%'",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap();
    for (name, comment) in databases {
        if name.starts_with(TEST_PREFIX) {
            // The name carries its creation time; `<uuid>` names (an older harness) do not:
            // their age comes from the file system, which only a superuser may read.
            let created = match created_at(&name) {
                Some(at) => Some(at),
                None => legacy_created(admin, &name).await,
            };
            if created.is_some_and(old) {
                try_execute(admin, &format!("DROP DATABASE {name}")).await;
            }
        } else if name.starts_with(TEMPLATE_PREFIX) && name != template {
            // No time: left half-built by a crashed run.
            if comment.as_deref().and_then(last_used).is_none_or(old) {
                try_execute(admin, &format!("ALTER DATABASE {name} IS_TEMPLATE false")).await;
                try_execute(admin, &format!("DROP DATABASE {name}")).await;
            }
        }
    }
    unlock(admin).await;
}

/// When a database without a time in its name was created, if the server lets us read it
/// (None, and the database stays, if not).
async fn legacy_created(admin: &mut PgConnection, name: &str) -> Option<u64> {
    let created: Option<i64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM (pg_stat_file('base/' || oid || '/PG_VERSION')).modification)::bigint \
         FROM pg_database WHERE datname = $1",
    )
    .bind(name)
    .fetch_optional(&mut *admin)
    .await
    .ok()
    .flatten();
    created.map(|secs| secs.max(0) as u64)
}

async fn unlock(admin: &mut PgConnection) {
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK)
        .execute(&mut *admin)
        .await
        .unwrap();
}

async fn execute(admin: &mut PgConnection, sql: &str) {
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(&mut *admin)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn try_execute(admin: &mut PgConnection, sql: &str) {
    let _ = sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(&mut *admin)
        .await;
}

/// `url`, plus `sslmode=disable` when it names a loopback host and no `sslmode`.
///
/// sqlx's default, `prefer`, negotiates TLS whenever the server offers it (Debian's does), and
/// every new connection then loads the system's root certificates and handshakes: about 100 ms
/// each on this machine, several times per test, to protect traffic that never leaves it. A URL
/// that names an `sslmode` is left alone: add `?sslmode=require` to run the tests over TLS.
pub(super) fn plain_on_loopback(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    let loopback = match parsed.host() {
        // A postgres:// URL's host is opaque to the url crate: an IPv4 address is a "domain".
        Some(url::Host::Domain(name)) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if !loopback || parsed.query_pairs().any(|(key, _)| key == "sslmode") {
        return url.to_owned();
    }
    parsed.query_pairs_mut().append_pair("sslmode", "disable");
    parsed.to_string()
}

/// `admin_url` with its database replaced by `name`.
pub(super) fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_database_names_say_when_they_were_made() {
        let name = test_database_name(1_795_000_000);
        assert!(
            name.len() <= 63,
            "PostgreSQL truncates longer names: {name}"
        );
        assert_eq!(created_at(&name), Some(1_795_000_000));
        // The older harness's names carry no time: the sweep asks the file system instead.
        assert_eq!(
            created_at("latchkey_test_0123456789abcdef0123456789abcdef"),
            None
        );
        assert_eq!(created_at("latchkey_tpl_0123456789abcdef"), None);
    }

    #[test]
    fn a_template_says_when_it_was_last_used() {
        let sql = mark_used("latchkey_tpl_0123456789abcdef");
        let comment = sql.split('\'').nth(1).unwrap();
        let at = last_used(comment).unwrap();
        assert!(at.abs_diff(unix_now()) < 60, "{comment}");
        assert_eq!(last_used("a comment someone else wrote"), None);
    }

    #[test]
    fn tls_is_turned_off_only_on_loopback_and_only_when_the_url_does_not_choose() {
        for (url, want) in [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
            ),
            (
                "postgres://u:p@localhost/db?application_name=t",
                "postgres://u:p@localhost/db?application_name=t&sslmode=disable",
            ),
            ("postgres://[::1]/db", "postgres://[::1]/db?sslmode=disable"),
            (
                "postgres://127.0.0.1/db?sslmode=require",
                "postgres://127.0.0.1/db?sslmode=require",
            ),
            (
                "postgres://db.example.com/db",
                "postgres://db.example.com/db",
            ),
        ] {
            assert_eq!(plain_on_loopback(url), want, "{url}");
        }
    }
}

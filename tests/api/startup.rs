//! Start-up, restart and the command line, as an operator meets them.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use reqwest::StatusCode;
use serde_json::json;

use crate::{
    both_engines,
    helpers::{TestApp, master_key_b64},
};

async fn restart_keeps_everything(mut app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    let team = app.team(&token, "Ops").await;
    let (_, cred) = app
        .post(
            "/api/v1/user_credentials",
            &token,
            json!({"name": "a", "mode": "TEXT", "team_id": team, "value": "v"}),
        )
        .await;
    app.restart().await;
    let (status, again) = app
        .get(&format!("/api/v1/user_credentials/{}", cred["id"]), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, cred);
    // The sealed secret still opens: an update that keeps it succeeds.
    let (status, body) = app
        .put(
            &format!("/api/v1/user_credentials/{}", cred["id"]),
            &token,
            json!({"name": "a", "mode": "TEXT"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn a_wrong_master_key_stops_start_up(mut app: TestApp) {
    app.stop().await;
    let mut env: Vec<(String, String)> = vec![("LATCHKEY_MASTER_KEY".into(), master_key_b64())];
    let url = match &app.engine {
        crate::helpers::Engine::Sqlite(path) => format!("sqlite://{}", path.display()),
        crate::helpers::Engine::Postgres { url, .. } => url.clone(),
    };
    env.push(("LATCHKEY_DATABASE_URL".into(), url));
    let config = latchkey::Config::load(None, env).unwrap();
    let error = latchkey::open(&config)
        .await
        .err()
        .expect("a wrong master key must not open the store");
    assert!(
        error.to_string().contains("master key does not match"),
        "{error}"
    );
}

/// kill -9 under write load: the binary serves several clients creating and deleting teams
/// and is killed with SIGKILL mid-stream; after a restart, every acknowledged create is
/// there and every acknowledged delete is gone.
async fn acknowledged_writes_survive_kill_9(mut app: TestApp) {
    let (_, token) = app.org_with("admin").await;
    app.stop().await;
    let url = match &app.engine {
        crate::helpers::Engine::Sqlite(path) => format!("sqlite://{}", path.display()),
        crate::helpers::Engine::Postgres { url, .. } => url.clone(),
    };
    let latchkey::config::MasterKeySource::Inline(key) = &app.config.master_key else {
        panic!("the tests use an inline master key")
    };
    use secrecy::ExposeSecret;
    let env = vec![
        ("LATCHKEY_DATABASE_URL".to_owned(), url),
        (
            "LATCHKEY_MASTER_KEY".to_owned(),
            key.expose_secret().to_owned(),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, _) = serve_with(dir.path(), &env);
    let base = format!("http://{addr}");

    let writers = (0..4).map(|w| {
        let base = base.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut created, mut deleted) = (Vec::new(), Vec::new());
            // A delete sent but not answered may or may not have happened.
            let mut unknown = None;
            for i in 0.. {
                let sent = client
                    .post(format!("{base}/api/v1/teams"))
                    .bearer_auth(&token)
                    .json(&json!({ "name": format!("writer {w} team {i}") }))
                    .send()
                    .await;
                let Ok(response) = sent else { break };
                if response.status() == StatusCode::CREATED
                    && let Ok(body) = response.json::<serde_json::Value>().await
                {
                    created.push(body["id"].as_i64().unwrap());
                }
                if i % 3 == 2 && created.len() > deleted.len() {
                    let id = created[deleted.len()];
                    let sent = client
                        .delete(format!("{base}/api/v1/teams/{id}"))
                        .bearer_auth(&token)
                        .send()
                        .await;
                    let Ok(response) = sent else {
                        unknown = Some(id);
                        break;
                    };
                    if response.status() == StatusCode::NO_CONTENT {
                        deleted.push(id);
                    }
                }
            }
            (created, deleted, unknown)
        })
    });
    let writers: Vec<_> = writers.collect();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (mut created, mut deleted, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    for writer in writers {
        let (c, d, u) = writer.await.unwrap();
        created.extend(c);
        deleted.extend(d);
        unknown.extend(u);
    }
    assert!(
        created.len() > 10 && !deleted.is_empty(),
        "{} creates, {} deletes",
        created.len(),
        deleted.len()
    );

    app.restart().await;
    let mut present = std::collections::HashSet::new();
    for page in 1.. {
        let (status, list) = app
            .get(&format!("/api/v1/teams?per_page=500&page={page}"), &token)
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let teams = list["teams"].as_array().unwrap();
        present.extend(teams.iter().map(|t| t["id"].as_i64().unwrap()));
        if list["meta"]["next_page"].is_null() {
            break;
        }
    }
    for id in created.iter().filter(|id| !unknown.contains(id)) {
        assert_eq!(present.contains(id), !deleted.contains(id), "team {id}");
    }
}

both_engines!(
    restart_keeps_everything,
    a_wrong_master_key_stops_start_up,
    acknowledged_writes_survive_kill_9
);

fn latchkey(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

/// Starts `latchkey serve` and returns the child, its address and what it printed to stdout.
fn serve(dir: &std::path::Path) -> (Child, String, String) {
    serve_with(dir, &[])
}

fn serve_with(dir: &std::path::Path, env: &[(String, String)]) -> (Child, String, String) {
    let mut child = latchkey(dir)
        .arg("serve")
        .env("LATCHKEY_LISTEN", "127.0.0.1:0")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let mut addr = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if let Ok(event) = serde_json::from_str::<serde_json::Value>(&line)
            && event["message"] == "latchkey listening"
        {
            addr = event["addr"].as_str().map(str::to_owned);
            // Reading stops here and the pipe closes: the server must keep serving regardless.
            break;
        }
    }
    let addr = addr.unwrap_or_else(|| panic!("the server did not start:\n{log}"));
    (child, addr, log)
}

fn stop(mut child: Child) -> String {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    out
}

#[tokio::test]
async fn first_run_from_an_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, log) = serve(dir.path());
    assert!(
        log.contains("generated one and wrote it"),
        "a warning about the new key file: {log}"
    );
    let data = dir.path().join("latchkey-data");
    assert!(data.join("latchkey.db").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("master.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the data directory is private");

    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let out = stop(child);
    let token = out.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(
        token.starts_with("lk_"),
        "the admin token is printed once to stdout: {out}"
    );
    assert!(
        !log.contains(&token),
        "the admin token never reaches the log"
    );

    // Restart: no second token, the first one still works.
    let (child, addr, log) = serve(dir.path());
    assert!(!log.contains("generated one"));
    let orgs = client
        .get(format!("http://{addr}/v1/organizations"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(orgs.status(), StatusCode::OK);
    let out = stop(child);
    assert!(!out.contains("lk_"), "{out}");

    // The CLI mints tokens and verifies the audit log offline.
    let minted = latchkey(dir.path())
        .args(["token", "create", "--admin"])
        .output()
        .unwrap();
    assert!(minted.status.success());
    assert!(
        String::from_utf8(minted.stdout)
            .unwrap()
            .trim()
            .starts_with("lk_")
    );
    let verified = latchkey(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert!(verified.status.success());
    assert!(
        String::from_utf8(verified.stdout)
            .unwrap()
            .contains("intact")
    );
    let migrated = latchkey(dir.path()).arg("migrate").output().unwrap();
    assert!(migrated.status.success());

    // A different master key is refused with a clear message.
    let wrong = latchkey(dir.path())
        .arg("migrate")
        .env("LATCHKEY_MASTER_KEY", master_key_b64())
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("master key does not match"));

    // A lost key file is not silently replaced: start-up fails and leaves no new key behind.
    let key_file = dir.path().join("latchkey-data/master.key");
    let saved = std::fs::read(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let lost = latchkey(dir.path()).arg("migrate").output().unwrap();
    assert_eq!(lost.status.code(), Some(1), "{lost:?}");
    assert!(
        String::from_utf8_lossy(&lost.stderr).contains("was missing"),
        "{lost:?}"
    );
    assert!(!key_file.exists(), "the useless new key was removed");
    std::fs::write(&key_file, saved).unwrap();

    // A removed audit event breaks the chain: `audit verify` names it and exits 1.
    let db = dir.path().join("latchkey-data/latchkey.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_events WHERE seq = 1")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let broken = latchkey(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    assert_eq!(broken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&broken.stdout).contains("BROKEN"));
}

#[test]
fn bad_settings_exit_2_and_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("LATCHKEY_LISTEN", "not-an-address"),
        ("LATCHKEY_DATABASE_URL", "mysql://localhost/x"),
        ("LATCHKEY_MASTER_KEY", "dG9vLXNob3J0"),
        ("LATCHKEY_LOG_FORMAT", "xml"),
        ("LATCHKEY_BODY_LIMIT", "lots"),
    ] {
        let out = latchkey(dir.path())
            .arg("serve")
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{name}: {stderr}");
        if name == "LATCHKEY_MASTER_KEY" {
            assert!(!stderr.contains(value));
        }
    }
    std::fs::write(
        dir.path().join("latchkey.toml"),
        "listen = 5\nunknown_thing = 1\n",
    )
    .unwrap();
    let out = latchkey(dir.path())
        .args(["--config", "latchkey.toml", "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !dir.path().join("latchkey-data").exists(),
        "nothing is created when the config is bad"
    );
}

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["token", "create", "--help"],
        &["audit", "verify", "--help"],
    ] {
        let out = latchkey(dir.path()).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

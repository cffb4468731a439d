//! One typed [`Config`], layered from defaults, an optional TOML file and `LATCHKEY_*`
//! environment variables (later layers win), then validated in one step that names the bad
//! setting. Nothing else in the crate reads the environment.

use std::num::NonZeroU32;
use std::{collections::BTreeMap, fmt, net::SocketAddr, path::PathBuf};

use secrecy::SecretString;

/// Every setting: its file key (the env var is `LATCHKEY_` + the key upper-cased) and meaning.
pub const SETTINGS: &[(&str, &str)] = &[
    ("listen", "address to listen on (default 127.0.0.1:8080)"),
    (
        "data_dir",
        "directory for the SQLite file and master key file (default ./latchkey-data)",
    ),
    (
        "database_url",
        "sqlite://PATH or postgres://… (default sqlite://DATA_DIR/latchkey.db)",
    ),
    (
        "master_key",
        "base64 of 32 bytes; wins over master_key_file",
    ),
    (
        "master_key_file",
        "file holding the base64 master key (default DATA_DIR/master.key)",
    ),
    ("log_format", "json (default) or pretty"),
    (
        "log_level",
        "tracing filter, e.g. info or latchkey=debug (default info)",
    ),
    (
        "body_limit",
        "largest accepted request body in bytes (default 102400)",
    ),
    (
        "public_url",
        "external base URL used in links and as the `iss` of access tokens (default: from the Host header); @commercelayer/js-auth needs https://auth.<domain>",
    ),
    (
        "token_rate_limit",
        "requests per minute each OAuth client may make to /oauth/token (Commerce Layer: 30; default 0, off)",
    ),
    (
        "egress_allow_networks",
        "comma-separated CIDRs outbound requests may reach besides public addresses, e.g. 127.0.0.0/8,::1/128 (default none)",
    ),
    (
        "egress_timeout",
        "seconds a credential use may take, fetches and redirects included (default 30)",
    ),
    (
        "egress_max_response_bytes",
        "largest upstream response body read, in bytes (default 10485760)",
    ),
    (
        "egress_max_concurrent",
        "upstream requests in flight per organization (default 32)",
    ),
    (
        "rate_limit_per_ip",
        "requests per second per client address, bursts of twice that (default 1000; 0: off)",
    ),
    (
        "rate_limit_per_token",
        "requests per second per Authorization value, bursts of twice that (default 1000; 0: off)",
    ),
    (
        "auth_failure_limit",
        "failed authentications per minute per client address or key before 429 (default 30; 0: off)",
    ),
    (
        "trusted_proxies",
        "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client (default none)",
    ),
    (
        "aws_instance_profile",
        "true lets AWS INSTANCE_PROFILE credentials use this server's own instance role (default false)",
    ),
    (
        "aws_sts_endpoint",
        "STS endpoint for AWS ROLE credentials (default https://sts.amazonaws.com)",
    ),
    (
        "aws_imds_endpoint",
        "instance metadata service for AWS INSTANCE_PROFILE credentials (default http://169.254.169.254)",
    ),
];

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    pub master_key: MasterKeySource,
    pub log_format: LogFormat,
    pub log_level: String,
    pub body_limit: usize,
    pub public_url: Option<String>,
    /// Requests per minute per client at `/oauth/token`; None: no limit.
    pub token_rate_limit: Option<std::num::NonZeroU32>,
    /// Outbound requests made with stored credentials.
    pub egress: crate::egress::EgressConfig,
    /// Request limits per client address and per credential.
    pub throttle: crate::server::throttle::ThrottleConfig,
    /// Failed authentications per minute per client address or key; None: no limit.
    pub auth_failure_limit: Option<NonZeroU32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

#[derive(Clone)]
pub enum MasterKeySource {
    /// Base64 text from `LATCHKEY_MASTER_KEY` or the file's `master_key`.
    Inline(SecretString),
    File(PathBuf),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A setting that could not be used; `Display` names it the way the user wrote it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database.redacted())
            .field("master_key", &self.master_key)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .field("body_limit", &self.body_limit)
            .field("public_url", &self.public_url)
            .field("token_rate_limit", &self.token_rate_limit)
            .field("egress", &self.egress)
            .field("throttle", &self.throttle)
            .field("auth_failure_limit", &self.auth_failure_limit)
            .finish()
    }
}

impl fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline([redacted])"),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

impl DatabaseUrl {
    /// The URL without any password, for logs.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("redacted"));
                    }
                    // libpq also takes the password as a query parameter.
                    if parsed.query_pairs().any(|(k, _)| k == "password") {
                        let kept: Vec<(String, String)> = parsed
                            .query_pairs()
                            .map(|(k, v)| {
                                let v = if k == "password" {
                                    "redacted".into()
                                } else {
                                    v
                                };
                                (k.into_owned(), v.into_owned())
                            })
                            .collect();
                        parsed.query_pairs_mut().clear().extend_pairs(kept);
                    }
                    parsed.to_string()
                }
                Err(_) => "postgres://[unparseable]".to_owned(),
            },
        }
    }
}

/// Where each raw value came from, so an error names the setting as the user wrote it.
struct Raw {
    values: BTreeMap<&'static str, (String, String)>,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`: the standard names.
    aws: BTreeMap<String, String>,
}

impl Raw {
    fn take(&mut self, key: &'static str) -> Option<(String, String)> {
        self.values.remove(key)
    }
}

fn err(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_owned(),
        message: message.into(),
    }
}

impl Config {
    /// Defaults, then the file (if any), then the given environment.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut raw = Raw {
            values: BTreeMap::new(),
            aws: BTreeMap::new(),
        };
        if let Some(path) = file {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| err(&shown, format!("cannot read config file: {e}")))?;
            let table: toml::Table =
                toml::from_str(&text).map_err(|e| err(&shown, format!("not valid TOML: {e}")))?;
            for (key, value) in table {
                let Some(&(known, _)) = SETTINGS.iter().find(|(k, _)| *k == key) else {
                    return Err(err(&format!("{key} (in {shown})"), "unknown setting"));
                };
                let text = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => {
                        return Err(err(
                            &format!("{key} (in {shown})"),
                            format!("expected a string or number, found {}", other.type_str()),
                        ));
                    }
                };
                raw.values
                    .insert(known, (text, format!("{key} (in {shown})")));
            }
        }
        for (name, value) in env {
            if matches!(
                name.as_str(),
                "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_SESSION_TOKEN"
            ) {
                raw.aws.insert(name, value);
                continue;
            }
            let Some(key) = name.strip_prefix("LATCHKEY_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if let Some(&(known, _)) = SETTINGS.iter().find(|(k, _)| *k == key) {
                raw.values.insert(known, (value, name));
            }
        }
        Self::from_raw(raw)
    }

    /// Defaults only: what `latchkey serve` uses with no configuration at all.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::load(None, std::iter::empty())
    }

    fn from_raw(mut raw: Raw) -> Result<Self, ConfigError> {
        let listen = match raw.take("listen") {
            Some((v, name)) => v.parse().map_err(|_| {
                err(
                    &name,
                    format!("{v:?} is not an address like 127.0.0.1:8080"),
                )
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let data_dir = match raw.take("data_dir") {
            Some((v, name)) if v.trim().is_empty() => return Err(err(&name, "must not be empty")),
            Some((v, _)) => PathBuf::from(v),
            None => PathBuf::from("./latchkey-data"),
        };
        let database = match raw.take("database_url") {
            Some((v, name)) => parse_database_url(&v).map_err(|m| err(&name, m))?,
            None => DatabaseUrl::Sqlite(data_dir.join("latchkey.db")),
        };
        let inline = raw.take("master_key");
        let file = raw.take("master_key_file");
        let master_key = match (inline, file) {
            (Some((v, name)), _) => {
                crate::crypto::keyring::MasterKey::from_base64(v.trim())
                    .map_err(|_| err(&name, "must be the base64 encoding of exactly 32 bytes"))?;
                MasterKeySource::Inline(SecretString::from(v.trim().to_owned()))
            }
            (None, Some((v, name))) if v.trim().is_empty() => {
                return Err(err(&name, "must not be empty"));
            }
            (None, Some((v, _))) => MasterKeySource::File(PathBuf::from(v)),
            (None, None) => MasterKeySource::File(data_dir.join("master.key")),
        };
        let log_format = match raw.take("log_format") {
            Some((v, name)) => match v.as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                _ => return Err(err(&name, format!("{v:?} is not one of json, pretty"))),
            },
            None => LogFormat::Json,
        };
        let log_level = match raw.take("log_level") {
            Some((v, name)) => {
                tracing_subscriber::EnvFilter::try_new(&v)
                    .map_err(|e| err(&name, format!("{v:?} is not a log filter: {e}")))?;
                v
            }
            None => "info".to_owned(),
        };
        let body_limit = match raw.take("body_limit") {
            Some((v, name)) => match v.parse::<usize>() {
                Ok(n) if (1024..=64 * 1024 * 1024).contains(&n) => n,
                _ => {
                    return Err(err(
                        &name,
                        format!("{v:?} is not a byte count in 1024..=67108864"),
                    ));
                }
            },
            None => 100 * 1024,
        };
        let public_url = match raw.take("public_url") {
            Some((v, name)) => {
                let parsed = url::Url::parse(&v)
                    .map_err(|_| err(&name, format!("{v:?} is not an absolute URL")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(err(&name, "must be an http or https URL"));
                }
                Some(v.trim_end_matches('/').to_owned())
            }
            None => None,
        };
        let token_rate_limit = match raw.take("token_rate_limit") {
            Some((v, name)) => match v.parse::<u32>() {
                Ok(n) if n <= 1_000_000 => std::num::NonZeroU32::new(n),
                _ => {
                    return Err(err(
                        &name,
                        format!("{v:?} is not a count of requests per minute in 0..=1000000"),
                    ));
                }
            },
            None => None,
        };
        let mut egress = crate::egress::EgressConfig::default();
        if let Some((v, name)) = raw.take("egress_allow_networks") {
            egress.allow_networks =
                crate::egress::NetworkPolicy::parse_allow_list(&v).map_err(|m| err(&name, m))?;
        }
        let mut count = |key: &'static str,
                         range: std::ops::RangeInclusive<u64>|
         -> Result<Option<u64>, ConfigError> {
            match raw.take(key) {
                Some((v, name)) => match v.trim().parse::<u64>() {
                    Ok(n) if range.contains(&n) => Ok(Some(n)),
                    _ => Err(err(
                        &name,
                        format!(
                            "{v:?} is not a number in {}..={}",
                            range.start(),
                            range.end()
                        ),
                    )),
                },
                None => Ok(None),
            }
        };
        if let Some(s) = count("egress_timeout", 1..=600)? {
            egress.timeout = std::time::Duration::from_secs(s);
        }
        if let Some(n) = count("egress_max_response_bytes", 1024..=1 << 30)? {
            egress.max_response_bytes = n as usize;
        }
        if let Some(n) = count("egress_max_concurrent", 1..=100_000)? {
            egress.max_concurrent = n as usize;
        }
        let auth_failure_limit = match count("auth_failure_limit", 0..=1_000_000)? {
            Some(n) => NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)),
            None => NonZeroU32::new(crate::kernel::limits::MAX_FAILURES),
        };
        let rate =
            |n: Option<u64>| NonZeroU32::new(u32::try_from(n.unwrap_or(1000)).unwrap_or(u32::MAX));
        let throttle = crate::server::throttle::ThrottleConfig {
            per_ip: rate(count("rate_limit_per_ip", 0..=10_000_000)?),
            per_token: rate(count("rate_limit_per_token", 0..=10_000_000)?),
            trusted_proxies: match raw.take("trusted_proxies") {
                Some((v, name)) => {
                    crate::egress::NetworkPolicy::parse_allow_list(&v).map_err(|m| err(&name, m))?
                }
                None => Vec::new(),
            },
        };
        if let Some((v, name)) = raw.take("aws_instance_profile") {
            egress.aws_instance_profile = match v.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(err(&name, format!("{v:?} is not true or false"))),
            };
        }
        for (key, slot) in [
            ("aws_sts_endpoint", &mut egress.aws_sts_endpoint),
            ("aws_imds_endpoint", &mut egress.aws_imds_endpoint),
        ] {
            if let Some((v, name)) = raw.take(key) {
                match url::Url::parse(&v) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                        *slot = v.trim_end_matches('/').to_owned();
                    }
                    _ => return Err(err(&name, format!("{v:?} is not an http or https URL"))),
                }
            }
        }
        if let (Some(id), Some(secret)) = (
            raw.aws.remove("AWS_ACCESS_KEY_ID"),
            raw.aws.remove("AWS_SECRET_ACCESS_KEY"),
        ) {
            egress.aws_identity = Some(crate::egress::aws::AwsKeys {
                access_key_id: id,
                secret_access_key: SecretString::from(secret),
                session_token: raw.aws.remove("AWS_SESSION_TOKEN").map(SecretString::from),
                expiration: None,
            });
        }
        Ok(Self {
            listen,
            data_dir,
            database,
            master_key,
            log_format,
            log_level,
            body_limit,
            public_url,
            token_rate_limit,
            egress,
            throttle,
            auth_failure_limit,
        })
    }
}

fn parse_database_url(v: &str) -> Result<DatabaseUrl, String> {
    if let Some(path) = v
        .strip_prefix("sqlite://")
        .or_else(|| v.strip_prefix("sqlite:"))
    {
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(
                "sqlite URL needs a file path, e.g. sqlite://./latchkey-data/latchkey.db".into(),
            );
        }
        return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
    }
    if v.starts_with("postgres://") || v.starts_with("postgresql://") {
        url::Url::parse(v).map_err(|_| "not a valid postgres URL".to_owned())?;
        return Ok(DatabaseUrl::Postgres(v.to_owned()));
    }
    Err("must start with sqlite:// or postgres://".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_passwords_are_redacted_wherever_they_are() {
        for url in [
            "postgres://app:hunter2@db/latchkey",
            "postgres://app@db/latchkey?sslmode=require&password=hunter2",
        ] {
            let shown = DatabaseUrl::Postgres(url.to_owned()).redacted();
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
        let plain = DatabaseUrl::Postgres("postgres://app@db/latchkey?sslmode=require".into());
        assert!(plain.redacted().contains("sslmode=require"));
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = Config::defaults().unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.database,
            DatabaseUrl::Sqlite(PathBuf::from("./latchkey-data/latchkey.db"))
        );
        assert!(matches!(c.master_key, MasterKeySource::File(ref p) if p.ends_with("master.key")));
        assert_eq!(c.body_limit, 102_400);
    }

    #[test]
    fn env_overrides_file_and_errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latchkey.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nbody_limit = 2048\n").unwrap();
        let c = Config::load(Some(&path), env(&[("LATCHKEY_LISTEN", "127.0.0.1:9100")])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(c.body_limit, 2048);

        let e = Config::load(None, env(&[("LATCHKEY_LISTEN", "nowhere")])).unwrap_err();
        assert_eq!(e.setting, "LATCHKEY_LISTEN");
        let e =
            Config::load(Some(&path), env(&[("LATCHKEY_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert_eq!(e.setting, "LATCHKEY_DATABASE_URL");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let e = Config::load(Some(&path), env(&[])).unwrap_err();
        assert!(e.setting.starts_with("lisen"), "{e}");
    }

    #[test]
    fn a_bad_master_key_is_named_but_never_echoed() {
        let e =
            Config::load(None, env(&[("LATCHKEY_MASTER_KEY", "c2VjcmV0LXNob3J0")])).unwrap_err();
        assert_eq!(e.setting, "LATCHKEY_MASTER_KEY");
        assert!(!e.to_string().contains("c2VjcmV0LXNob3J0"));
    }

    #[test]
    fn debug_hides_the_master_key_and_database_password() {
        let key = crate::crypto::keyring::MasterKey::generate().unwrap();
        let b64 = secrecy::ExposeSecret::expose_secret(&key.to_base64()).to_owned();
        let c = Config::load(
            None,
            env(&[
                ("LATCHKEY_MASTER_KEY", &b64),
                ("LATCHKEY_DATABASE_URL", "postgres://u:hunter2@localhost/db"),
            ]),
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains(&b64));
        assert!(!shown.contains("hunter2"));
    }
}

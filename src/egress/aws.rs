//! AWS: requests signed with Signature Version 4, and where the keys come from.
//!
//! - `KEY`: the stored access key and secret key.
//! - `ROLE`: temporary keys from STS `AssumeRole` (with the credential's external id), signed
//!   with Latchkey's own identity (the `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` it runs
//!   with, else its instance profile), cached until shortly before they expire.
//! - `INSTANCE_PROFILE`: the instance's role, read from IMDSv2.
//!
//! STS and IMDS are the operator's endpoints (`LATCHKEY_AWS_STS_ENDPOINT`,
//! `LATCHKEY_AWS_IMDS_ENDPOINT`), reached with a client that is not subject to the egress
//! network policy (IMDS is link-local by design) and never with a caller's input.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use aws_sigv4::{
    http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    },
    sign::v4,
};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use url::Url;

use super::{
    Credential, EgressError, Kind, Session,
    client::Outbound,
    request::RequestOptions,
    template::{self, Reference},
    tokens::CacheKey,
};

pub const DEFAULT_STS_ENDPOINT: &str = "https://sts.amazonaws.com";
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";

/// How long an assumed-role session lasts (STS' minimum, as Tines asks for).
const SESSION_SECONDS: u64 = 900;

/// A set of AWS keys. Serialized only into the token cache's sealed-in-memory value.
#[derive(Clone, Serialize, Deserialize)]
pub struct AwsKeys {
    #[serde(rename = "AccessKeyId")]
    pub access_key_id: String,
    #[serde(
        rename = "SecretAccessKey",
        serialize_with = "crate::crypto::secret::expose::secret"
    )]
    pub secret_access_key: SecretString,
    #[serde(
        rename = "SessionToken",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::crypto::secret::expose::option"
    )]
    pub session_token: Option<SecretString>,
    #[serde(
        rename = "Expiration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expiration: Option<String>,
}

impl std::fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKeys")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AwsKeys {
    /// As the token cache holds them.
    pub fn to_secret(&self) -> Result<SecretString, EgressError> {
        serde_json::to_string(self)
            .map(SecretString::from)
            .map_err(|e| EgressError::Internal(e.to_string()))
    }

    pub fn from_secret(secret: &SecretString) -> Result<Self, EgressError> {
        serde_json::from_str(secret.expose_secret())
            .map_err(|_| EgressError::Internal("cached AWS keys are not valid".into()))
    }

    /// How long the keys may be used: until shortly before `Expiration`.
    pub fn lifetime(&self) -> Duration {
        let expires = self.expiration.as_deref().and_then(|e| {
            time::OffsetDateTime::parse(e, &time::format_description::well_known::Rfc3339).ok()
        });
        let remaining = expires
            .map(|e| (e - time::OffsetDateTime::now_utc()).whole_seconds())
            .unwrap_or(SESSION_SECONDS as i64);
        // Five minutes early, and never cached for less than nothing.
        Duration::from_secs(u64::try_from(remaining - 300).unwrap_or(0).max(1))
    }
}

/// Where an AWS credential's keys come from.
#[derive(Debug)]
pub enum AwsAuth {
    Key {
        access_key_id: String,
        secret_access_key: SecretString,
    },
    Role {
        role_arn: String,
        external_id: Option<String>,
    },
    InstanceProfile,
}

/// `(region, service)` from an AWS host name: `dynamodb.eu-west-1.amazonaws.com`,
/// `bucket.s3.eu-west-1.amazonaws.com`, `sts.amazonaws.com` (global: us-east-1).
pub fn scope_from_host(host: &str) -> Option<(String, String)> {
    let host = host.to_ascii_lowercase();
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let labels: Vec<&str> = rest.split('.').collect();
    let is_region = |l: &str| {
        let parts: Vec<&str> = l.split('-').collect();
        parts.len() >= 3
            && parts[0].len() == 2
            && parts
                .last()
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
    };
    match labels.iter().position(|l| is_region(l)) {
        Some(i) if i > 0 => {
            let service = labels[i - 1];
            // Dualstack and FIPS endpoints put a qualifier before the region.
            let service = if matches!(service, "dualstack" | "fips") && i > 1 {
                labels[i - 2]
            } else {
                service
            };
            let service = service.strip_suffix("-fips").unwrap_or(service);
            Some((labels[i].to_owned(), service.to_owned()))
        }
        Some(_) => None,
        None => Some(("us-east-1".to_owned(), labels.last()?.to_string())),
    }
}

/// Signs `request` in place: adds `authorization`, `x-amz-date`, `x-amz-content-sha256` and,
/// for temporary keys, `x-amz-security-token`.
pub fn sign_request(
    request: &mut Outbound,
    keys: &AwsKeys,
    region: &str,
    service: &str,
) -> Result<(), EgressError> {
    let credentials = aws_credential_types::Credentials::new(
        keys.access_key_id.clone(),
        keys.secret_access_key.expose_secret().to_owned(),
        keys.session_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        None,
        "latchkey",
    );
    let identity: aws_smithy_runtime_api::client::identity::Identity = credentials.into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    if service == "s3" {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| EgressError::Internal(format!("signing parameters: {e}")))?
        .into();
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    let body = request.body.as_deref().unwrap_or_default();
    let signable = SignableRequest::new(
        request.method.as_str(),
        request.url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|_| EgressError::invalid("url", "the request cannot be signed for AWS"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|_| EgressError::invalid("headers", "the request cannot be signed for AWS"))?
        .into_parts();
    let (headers, _) = instructions.into_parts();
    for header in headers {
        let name = HeaderName::from_bytes(header.name().as_bytes())
            .map_err(|_| EgressError::Internal("signing header name".into()))?;
        let value = HeaderValue::from_str(header.value())
            .map_err(|_| EgressError::Internal("signing header value".into()))?;
        if matches!(name.as_str(), "authorization" | "x-amz-security-token") {
            request.secret_headers.push(name.clone());
        }
        request.headers.insert(name, value);
    }
    Ok(())
}

/// STS' `AssumeRole` answer, as far as we read it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleResponse {
    assume_role_result: AssumeRoleResult,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleResult {
    credentials: StsCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

/// Reads the keys from an `AssumeRole` answer (XML).
pub fn parse_assume_role(xml: &[u8]) -> Result<AwsKeys, String> {
    let text = std::str::from_utf8(xml).map_err(|_| "STS answered something that is not text")?;
    let answer: AssumeRoleResponse =
        quick_xml::de::from_str(text).map_err(|_| "STS answered XML without credentials")?;
    let c = answer.assume_role_result.credentials;
    Ok(AwsKeys {
        access_key_id: c.access_key_id,
        secret_access_key: SecretString::from(c.secret_access_key),
        session_token: Some(SecretString::from(c.session_token)),
        expiration: Some(c.expiration),
    })
}

/// The form body of an `AssumeRole` call.
pub fn assume_role_body(role_arn: &str, external_id: Option<&str>, session: &str) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("Action", "AssumeRole")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", role_arn)
        .append_pair("RoleSessionName", session)
        .append_pair("DurationSeconds", &SESSION_SECONDS.to_string());
    if let Some(id) = external_id {
        form.append_pair("ExternalId", id);
    }
    form.finish()
}

/// What signs a request for AWS: the keys, and the scope.
pub(super) struct Signing {
    pub(super) slug: String,
    pub(super) keys: AwsKeys,
    pub(super) region: String,
    pub(super) service: String,
}

/// The AWS credential whose reference is the whole `Authorization` header, if any.
pub(super) fn signing_credential(
    options: &RequestOptions,
    credentials: &[Arc<Credential>],
) -> Option<Arc<Credential>> {
    let value = options
        .headers
        .as_ref()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?
        .1
        .as_str()?
        .trim();
    let inner = value.strip_prefix("<<")?.strip_suffix(">>")?;
    let refs = template::references(value);
    let [Reference::Credential(slug)] = refs.as_slice() else {
        return None;
    };
    if inner.contains("<<") {
        return None;
    }
    credentials
        .iter()
        .find(|c| c.slug == *slug && matches!(c.kind, Kind::Aws { .. }))
        .cloned()
}

/// Where a session's AWS keys come from, and what signs its requests.
impl Session<'_> {
    /// The keys and scope that sign a request to `target` for an AWS credential.
    pub(super) async fn signing(
        &self,
        credential: &Arc<Credential>,
        target: &Url,
    ) -> Result<Signing, EgressError> {
        let Kind::Aws {
            region, service, ..
        } = &credential.kind
        else {
            return Err(EgressError::Internal("not an AWS credential".into()));
        };
        let from_host = target.host_str().and_then(scope_from_host);
        let region = region
            .clone()
            .or_else(|| from_host.as_ref().map(|(r, _)| r.clone()));
        let service = service
            .clone()
            .or_else(|| from_host.as_ref().map(|(_, s)| s.clone()));
        let (Some(region), Some(service)) = (region, service) else {
            return Err(EgressError::Unusable {
                message: format!(
                    "credential {:?}: the region and service cannot be read from {}; set aws_region and aws_service",
                    credential.slug,
                    target.host_str().unwrap_or_default()
                ),
            });
        };
        Ok(Signing {
            slug: credential.slug.clone(),
            keys: self.aws_keys(credential).await?,
            region,
            service,
        })
    }

    /// The keys an AWS credential signs with now.
    pub(super) async fn aws_keys(
        &self,
        credential: &Arc<Credential>,
    ) -> Result<AwsKeys, EgressError> {
        let Kind::Aws { auth, .. } = &credential.kind else {
            return Err(EgressError::Internal("not an AWS credential".into()));
        };
        let failed = |message: String| EgressError::Fetch {
            slug: credential.slug.clone(),
            message,
        };
        let cached = match auth {
            AwsAuth::Key {
                access_key_id,
                secret_access_key,
            } => {
                return Ok(AwsKeys {
                    access_key_id: access_key_id.clone(),
                    secret_access_key: secret_access_key.clone(),
                    session_token: None,
                    expiration: None,
                });
            }
            AwsAuth::Role {
                role_arn,
                external_id,
            } => {
                let key = (self.partition.clone(), credential.id, credential.version);
                let fetch = async {
                    let keys = self
                        .assume_role(credential, role_arn, external_id.as_deref())
                        .await
                        .map_err(failed)?;
                    Ok((keys.to_secret()?, keys.lifetime()))
                };
                self.egress.inner.tokens.get_or_fetch(key, fetch).await?
            }
            AwsAuth::InstanceProfile if !self.egress.config().aws_instance_profile => {
                return Err(EgressError::Unusable {
                    message: format!(
                        "credential {:?}: INSTANCE_PROFILE credentials are off on this server (LATCHKEY_AWS_INSTANCE_PROFILE)",
                        credential.slug
                    ),
                });
            }
            AwsAuth::InstanceProfile => self.instance_keys().await.map_err(|e| match e {
                EgressError::Fetch { message, .. } => failed(message),
                other => other,
            })?,
        };
        AwsKeys::from_secret(&cached)
    }

    /// STS `AssumeRole`, signed with Latchkey's own identity.
    async fn assume_role(
        &self,
        credential: &Credential,
        role_arn: &str,
        external_id: Option<&str>,
    ) -> Result<AwsKeys, String> {
        let config = self.egress.config();
        let own = match &config.aws_identity {
            Some(keys) => keys.clone(),
            None => AwsKeys::from_secret(&self.instance_keys().await.map_err(|e| {
                format!("Latchkey has no AWS identity to assume the role with ({e})")
            })?)
            .map_err(|e| e.to_string())?,
        };
        let url = Url::parse(&format!(
            "{}/",
            config.aws_sts_endpoint.trim_end_matches('/')
        ))
        .map_err(|_| "LATCHKEY_AWS_STS_ENDPOINT is not a URL".to_owned())?;
        let (region, _) = url
            .host_str()
            .and_then(scope_from_host)
            .unwrap_or(("us-east-1".to_owned(), "sts".to_owned()));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let body = assume_role_body(
            role_arn,
            external_id,
            &format!("latchkey-{}", credential.id),
        );
        let mut outbound = Outbound {
            method: reqwest::Method::POST,
            url,
            headers,
            body: Some(body.into()),
            secret_headers: Vec::new(),
            body_has_secret: false,
        };
        sign_request(&mut outbound, &own, &region, "sts").map_err(|e| e.to_string())?;
        let answer = self
            .egress
            .send_infra(outbound)
            .await
            .map_err(|e| format!("STS AssumeRole failed: {e}"))?;
        if !answer.status.is_success() {
            return Err(format!(
                "STS AssumeRole answered HTTP {}",
                answer.status.as_u16()
            ));
        }
        parse_assume_role(&answer.body)
    }

    /// The instance profile's keys (IMDSv2), cached until shortly before they expire.
    async fn instance_keys(&self) -> Result<SecretString, EgressError> {
        let key: CacheKey = ("aws:instance-profile".into(), 0, 0);
        let fetch = async {
            let keys = self.imds().await.map_err(|message| EgressError::Fetch {
                slug: "instance profile".into(),
                message,
            })?;
            Ok((keys.to_secret()?, keys.lifetime()))
        };
        self.egress.inner.tokens.get_or_fetch(key, fetch).await
    }

    async fn imds(&self) -> Result<AwsKeys, String> {
        let base = self
            .egress
            .config()
            .aws_imds_endpoint
            .trim_end_matches('/')
            .to_owned();
        let call = |method: reqwest::Method, path: &str, headers: HeaderMap| {
            let url = Url::parse(&format!("{base}{path}"));
            async move {
                let url = url.map_err(|_| "LATCHKEY_AWS_IMDS_ENDPOINT is not a URL".to_owned())?;
                let answer = self
                    .egress
                    .send_infra(Outbound {
                        method,
                        url,
                        headers,
                        body: None,
                        secret_headers: Vec::new(),
                        body_has_secret: false,
                    })
                    .await
                    .map_err(|e| format!("the instance metadata service failed: {e}"))?;
                if !answer.status.is_success() {
                    return Err(format!(
                        "the instance metadata service answered HTTP {}",
                        answer.status.as_u16()
                    ));
                }
                Ok(String::from_utf8_lossy(&answer.body).into_owned())
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-aws-ec2-metadata-token-ttl-seconds",
            HeaderValue::from_static("21600"),
        );
        let token = call(reqwest::Method::PUT, "/latest/api/token", headers).await?;
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-aws-ec2-metadata-token",
            HeaderValue::from_str(token.trim())
                .map_err(|_| "IMDS answered a bad token".to_owned())?,
        );
        let path = "/latest/meta-data/iam/security-credentials/";
        let roles = call(reqwest::Method::GET, path, headers.clone()).await?;
        let role = roles
            .lines()
            .next()
            .map(str::trim)
            .filter(|r| !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| "the instance has no role".to_owned())?;
        let keys = call(reqwest::Method::GET, &format!("{path}{role}"), headers).await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Imds {
            access_key_id: String,
            secret_access_key: String,
            token: Option<String>,
            expiration: Option<String>,
        }
        let k: Imds =
            serde_json::from_str(&keys).map_err(|_| "IMDS answered no keys".to_owned())?;
        Ok(AwsKeys {
            access_key_id: k.access_key_id,
            secret_access_key: SecretString::from(k.secret_access_key),
            session_token: k.token.map(SecretString::from),
            expiration: k.expiration,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_and_service_from_hosts() {
        let scope = |h: &str| scope_from_host(h).map(|(r, s)| format!("{r}/{s}"));
        assert_eq!(
            scope("dynamodb.eu-west-1.amazonaws.com").as_deref(),
            Some("eu-west-1/dynamodb")
        );
        assert_eq!(
            scope("my-bucket.s3.us-west-2.amazonaws.com").as_deref(),
            Some("us-west-2/s3")
        );
        assert_eq!(scope("sts.amazonaws.com").as_deref(), Some("us-east-1/sts"));
        assert_eq!(
            scope("s3.dualstack.eu-central-1.amazonaws.com").as_deref(),
            Some("eu-central-1/s3")
        );
        assert_eq!(
            scope("sqs.cn-north-1.amazonaws.com.cn").as_deref(),
            Some("cn-north-1/sqs")
        );
        assert_eq!(scope("example.com"), None);
    }

    #[test]
    fn reads_an_assume_role_answer() {
        let xml = br#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIATEST</AccessKeyId>
      <SecretAccessKey>secret/key</SecretAccessKey>
      <SessionToken>token=</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>x</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#;
        let keys = parse_assume_role(xml).expect("parses");
        assert_eq!(keys.access_key_id, "ASIATEST");
        assert_eq!(keys.secret_access_key.expose_secret(), "secret/key");
        assert!(keys.lifetime() > Duration::from_secs(3600));
        assert!(parse_assume_role(b"<Error/>").is_err());
        let round = AwsKeys::from_secret(&keys.to_secret().expect("json")).expect("back");
        assert_eq!(
            round
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned())
                .as_deref(),
            Some("token=")
        );
        assert!(!format!("{round:?}").contains("secret/key"));
    }
}

//! Validating a credential's mode-specific input: which fields each of the seven modes
//! requires, what they may hold, and which secret inputs are kept from the stored credential
//! when an update leaves them out.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::model::*;
use crate::{
    crypto::{pem, secret::random_hex},
    kernel::{CoreError, Result, types::HttpUrl},
};

fn required<'a, T>(value: &'a Option<T>, field: &str, mode: CredentialMode) -> Result<&'a T> {
    value.as_ref().ok_or_else(|| {
        CoreError::malformed(
            field,
            format!("{field} is required for mode {}", mode.as_str()),
        )
    })
}

fn required_text(value: &Option<String>, field: &str, mode: CredentialMode) -> Result<String> {
    let text = required(value, field, mode)?;
    if text.trim().is_empty() {
        return Err(CoreError::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    Ok(text.clone())
}

/// A secret input: the new value, or (same mode, field omitted) the one already stored.
fn secret_or_kept(
    new: &Option<SecretString>,
    kept: Option<&SecretString>,
    field: &str,
    mode: CredentialMode,
) -> Result<SecretString> {
    match new.as_ref().or(kept) {
        Some(s) if !s.expose_secret().is_empty() => Ok(s.clone()),
        Some(_) => Err(CoreError::invalid(
            field,
            format!("{field} must not be empty"),
        )),
        None => Err(CoreError::malformed(
            field,
            format!("{field} is required for mode {}", mode.as_str()),
        )),
    }
}

/// Optional secret: a new value replaces, an empty string clears, omission keeps.
fn optional_secret(
    new: &Option<SecretString>,
    kept: Option<&SecretString>,
) -> Option<SecretString> {
    match new {
        Some(s) if s.expose_secret().is_empty() => None,
        Some(s) => Some(s.clone()),
        None => kept.cloned(),
    }
}

const HTTP_METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

/// Checks the parts of HTTP Request options that Latchkey will act on.
fn check_request_options(options: &Map<String, Value>, prefix: &str) -> Result<()> {
    let url_field = format!("{prefix}.url");
    match options.get("url") {
        Some(Value::String(url)) => {
            HttpUrl::parse(url, "url").map_err(|e| {
                CoreError::invalid(&url_field, format!("{url_field} {}", e.message))
            })?;
        }
        Some(_) => {
            return Err(CoreError::malformed(
                &url_field,
                format!("{url_field} must be a string"),
            ));
        }
        None => {
            return Err(CoreError::malformed(
                &url_field,
                format!("{url_field} is required"),
            ));
        }
    }
    if let Some(method) = options.get("method") {
        let ok = method
            .as_str()
            .is_some_and(|m| HTTP_METHODS.contains(&m.to_ascii_lowercase().as_str()));
        if !ok {
            let field = format!("{prefix}.method");
            return Err(CoreError::invalid(
                &field,
                format!("{field} must be one of {}", HTTP_METHODS.join(", ")),
            ));
        }
    }
    if let Some(headers) = options.get("headers")
        && !headers.is_object()
    {
        let field = format!("{prefix}.headers");
        return Err(CoreError::malformed(
            &field,
            format!("{field} must be an object"),
        ));
    }
    Ok(())
}

fn check_ttl(ttl: Option<i64>) -> Result<Option<i64>> {
    ttl.map(|t| TtlSeconds::parse(t).map(|t| i64::from(t.get())))
        .transpose()
        .map_err(Into::into)
}

fn check_location(input: &CredentialInput, mode: CredentialMode) -> Result<String> {
    required_text(
        &input.http_request_location_of_token,
        "http_request_location_of_token",
        mode,
    )
}

fn check_pem(text: &str, field: &str, want: impl Fn(&str) -> bool, what: &str) -> Result<()> {
    match pem::labels(text) {
        Some(labels) if !labels.is_empty() && labels.iter().all(|l| want(l)) => Ok(()),
        _ => Err(CoreError::invalid(
            field,
            format!("{field} must be {what} in PEM format"),
        )),
    }
}

fn is_aws_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5]
            .strip_prefix("role/")
            .is_some_and(|r| !r.is_empty())
}

/// Builds the mode configuration and secrets from `input`, keeping stored secrets the
/// caller did not resend when the mode is unchanged.
pub(super) fn build_mode(
    input: &CredentialInput,
    mode: CredentialMode,
    previous: Option<(&ModeConfig, &Secrets)>,
) -> Result<(ModeConfig, Secrets)> {
    let kept = previous.filter(|(c, _)| c.mode() == mode).map(|(_, s)| s);
    let mut secrets = Secrets::default();
    let config = match mode {
        CredentialMode::Text => {
            secrets.value = Some(secret_or_kept(
                &input.value,
                kept.and_then(|k| k.value.as_ref()),
                "value",
                mode,
            )?);
            ModeConfig::Text {}
        }
        CredentialMode::Jwt => {
            let alg = parse_jwt_algorithm(required(&input.jwt_algorithm, "jwt_algorithm", mode)?)?;
            let key = secret_or_kept(
                &input.jwt_private_key,
                kept.and_then(|k| k.jwt_private_key.as_ref()),
                "jwt_private_key",
                mode,
            )?;
            check_jwt_signing_key(alg, key.expose_secret())?;
            secrets.jwt_private_key = Some(key);
            ModeConfig::Jwt {
                jwt_algorithm: alg,
                jwt_payload: input.jwt_payload.clone().unwrap_or_default(),
                jwt_auto_generate_time_claims: input.jwt_auto_generate_time_claims.unwrap_or(false),
            }
        }
        CredentialMode::Oauth => {
            let grant = input
                .oauth_grant_type
                .clone()
                .unwrap_or_else(|| "client_credentials".into());
            if !matches!(grant.as_str(), "client_credentials" | "authorization_code") {
                return Err(CoreError::invalid(
                    "oauth_grant_type",
                    "oauth_grant_type must be client_credentials or authorization_code",
                ));
            }
            let token_url = HttpUrl::parse(
                required(&input.oauth_token_url, "oauth_token_url", mode)?,
                "oauth_token_url",
            )?;
            let oauth_url = match (&input.oauth_url, grant.as_str()) {
                (Some(url), _) => Some(HttpUrl::parse(url, "oauth_url")?.as_str().to_owned()),
                (None, "authorization_code") => {
                    return Err(CoreError::malformed(
                        "oauth_url",
                        "oauth_url is required for the authorization_code grant",
                    ));
                }
                (None, _) => None,
            };
            let pkce = input.oauth_pkce_code_challenge_method.clone();
            if let Some(method) = &pkce {
                if !matches!(method.as_str(), "S256" | "plain") {
                    return Err(CoreError::invalid(
                        "oauthPkceCodeChallengeMethod",
                        "oauthPkceCodeChallengeMethod must be S256 or plain",
                    ));
                }
                if grant != "authorization_code" {
                    return Err(CoreError::invalid(
                        "oauthPkceCodeChallengeMethod",
                        "oauthPkceCodeChallengeMethod applies to the authorization_code grant only",
                    ));
                }
            }
            secrets.oauth_client_secret = Some(secret_or_kept(
                &input.oauth_client_secret,
                kept.and_then(|k| k.oauth_client_secret.as_ref()),
                "oauth_client_secret",
                mode,
            )?);
            ModeConfig::Oauth {
                oauth_url,
                oauth_token_url: token_url.as_str().to_owned(),
                oauth_client_id: required_text(&input.oauth_client_id, "oauth_client_id", mode)?,
                oauth_scope: input.oauth_scope.clone(),
                oauth_grant_type: grant,
                oauth_pkce_code_challenge_method: pkce,
            }
        }
        CredentialMode::Aws => {
            let kind = required(
                &input.aws_authentication_type,
                "aws_authentication_type",
                mode,
            )?
            .clone();
            let (access_key, role_arn, external_id) = match kind.as_str() {
                "KEY" => {
                    let access = required_text(&input.aws_access_key, "aws_access_key", mode)?;
                    secrets.aws_secret_key = Some(secret_or_kept(
                        &input.aws_secret_key,
                        kept.and_then(|k| k.aws_secret_key.as_ref()),
                        "aws_secret_key",
                        mode,
                    )?);
                    (Some(access), None, None)
                }
                "ROLE" => {
                    let arn =
                        required_text(&input.aws_assumed_role_arn, "aws_assumed_role_arn", mode)?;
                    if !is_aws_role_arn(&arn) {
                        return Err(CoreError::invalid(
                            "aws_assumed_role_arn",
                            "aws_assumed_role_arn must look like arn:aws:iam::123456789012:role/name",
                        ));
                    }
                    // The external id is part of the customer's trust policy: keep it stable.
                    let external_id = match previous.map(|(c, _)| c) {
                        Some(ModeConfig::Aws {
                            aws_assumed_role_external_id: Some(id),
                            ..
                        }) => id.clone(),
                        _ => random_hex(16)?,
                    };
                    (None, Some(arn), Some(external_id))
                }
                "INSTANCE_PROFILE" => (None, None, None),
                _ => {
                    return Err(CoreError::invalid(
                        "aws_authentication_type",
                        "aws_authentication_type must be KEY, ROLE or INSTANCE_PROFILE",
                    ));
                }
            };
            let scope = |value: &Option<String>, field: &str| -> Result<Option<String>> {
                match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                    None => Ok(None),
                    Some(v)
                        if v.len() <= 64
                            && v.bytes().all(|b| {
                                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
                            }) =>
                    {
                        Ok(Some(v.to_owned()))
                    }
                    Some(_) => Err(CoreError::invalid(
                        field,
                        format!(
                            "{field} must be lower-case letters, digits and dashes, such as eu-west-1 or dynamodb"
                        ),
                    )),
                }
            };
            ModeConfig::Aws {
                aws_authentication_type: kind,
                aws_access_key: access_key,
                aws_assumed_role_arn: role_arn,
                aws_assumed_role_external_id: external_id,
                aws_region: scope(&input.aws_region, "aws_region")?,
                aws_service: scope(&input.aws_service, "aws_service")?,
            }
        }
        CredentialMode::Mtls => {
            let cert = required_text(
                &input.mtls_client_certificate,
                "mtls_client_certificate",
                mode,
            )?;
            check_pem(
                &cert,
                "mtls_client_certificate",
                |l| l == "CERTIFICATE",
                "a certificate",
            )?;
            let key = secret_or_kept(
                &input.mtls_client_private_key,
                kept.and_then(|k| k.mtls_client_private_key.as_ref()),
                "mtls_client_private_key",
                mode,
            )?;
            check_pem(
                key.expose_secret(),
                "mtls_client_private_key",
                |l| l.ends_with("PRIVATE KEY"),
                "a private key",
            )?;
            let root = input
                .mtls_root_certificate
                .clone()
                .filter(|r| !r.trim().is_empty());
            if let Some(root) = &root {
                check_pem(
                    root,
                    "mtls_root_certificate",
                    |l| l == "CERTIFICATE",
                    "a certificate",
                )?;
            }
            // Built once now, so a key that does not match is refused here, not at first use.
            crate::egress::mtls::check(&cert, &key, root.as_deref())
                .map_err(|message| CoreError::invalid("mtls_client_private_key", message))?;
            secrets.mtls_client_private_key = Some(key);
            ModeConfig::Mtls {
                mtls_client_certificate: cert,
                mtls_root_certificate: root,
            }
        }
        CredentialMode::HttpRequestAgent => {
            let options = required(&input.http_request_options, "http_request_options", mode)?;
            check_request_options(options, "http_request_options")?;
            secrets.http_request_secret = optional_secret(
                &input.http_request_secret,
                kept.and_then(|k| k.http_request_secret.as_ref()),
            );
            ModeConfig::HttpRequestAgent {
                http_request_options: options.clone(),
                http_request_location_of_token: check_location(input, mode)?,
                http_request_ttl: check_ttl(input.http_request_ttl)?,
                content_type: input.content_type.clone(),
            }
        }
        CredentialMode::MultiRequest => {
            let requests = required(&input.credential_requests, "credential_requests", mode)?;
            if requests.len() != 2 {
                return Err(CoreError::invalid(
                    "credential_requests",
                    format!(
                        "credential_requests must hold exactly two requests, not {}",
                        requests.len()
                    ),
                ));
            }
            let mut stored = Vec::with_capacity(2);
            for (i, request) in requests.iter().enumerate() {
                let prefix = format!("credential_requests[{i}].options");
                let options = request.options.as_ref().ok_or_else(|| {
                    CoreError::malformed(&prefix, format!("{prefix} is required"))
                })?;
                check_request_options(options, &prefix)?;
                let kept_secret = kept
                    .and_then(|k| k.request_secrets.get(i))
                    .and_then(Option::as_ref);
                secrets
                    .request_secrets
                    .push(optional_secret(&request.http_request_secret, kept_secret));
                stored.push(StoredRequest {
                    options: options.clone(),
                });
            }
            ModeConfig::MultiRequest {
                credential_requests: stored,
                http_request_location_of_token: check_location(input, mode)?,
                http_request_ttl: check_ttl(input.http_request_ttl)?,
            }
        }
    };
    if let Some((previous, _)) = previous.filter(|(c, _)| c.mode() == mode)
        && destination(previous) != destination(&config)
        && let Some(field) = kept_secret(input, kept)
    {
        return Err(CoreError::invalid(
            field.clone(),
            format!(
                "{field} must be sent again when the URLs or the request it is sent with change"
            ),
        ));
    }
    Ok((config, secrets))
}

/// Where a mode's secret inputs are sent: changing it must not carry a stored secret along
/// (an editor could otherwise point a kept `oauth_client_secret` at a host of their own).
fn destination(config: &ModeConfig) -> Option<Value> {
    match config {
        ModeConfig::Oauth {
            oauth_url,
            oauth_token_url,
            ..
        } => Some(serde_json::json!([oauth_url, oauth_token_url])),
        ModeConfig::HttpRequestAgent {
            http_request_options,
            http_request_location_of_token,
            ..
        } => Some(serde_json::json!([
            http_request_options,
            http_request_location_of_token
        ])),
        ModeConfig::MultiRequest {
            credential_requests,
            http_request_location_of_token,
            ..
        } => {
            let options: Vec<&Map<String, Value>> =
                credential_requests.iter().map(|r| &r.options).collect();
            Some(serde_json::json!([options, http_request_location_of_token]))
        }
        _ => None,
    }
}

/// The first secret input an update leaves out while one is stored.
fn kept_secret(input: &CredentialInput, kept: Option<&Secrets>) -> Option<String> {
    let kept = kept?;
    if input.oauth_client_secret.is_none() && kept.oauth_client_secret.is_some() {
        return Some("oauth_client_secret".into());
    }
    if input.http_request_secret.is_none() && kept.http_request_secret.is_some() {
        return Some("http_request_secret".into());
    }
    let requests = input.credential_requests.as_deref().unwrap_or_default();
    kept.request_secrets
        .iter()
        .enumerate()
        .find(|(i, s)| {
            s.is_some()
                && requests
                    .get(*i)
                    .is_none_or(|r| r.http_request_secret.is_none())
        })
        .map(|(i, _)| format!("credential_requests[{i}].http_request_secret"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        assert!(is_aws_role_arn("arn:aws:iam::123456789012:role/latchkey"));
        assert!(is_aws_role_arn(
            "arn:aws-us-gov:iam::123456789012:role/path/x"
        ));
        assert!(!is_aws_role_arn("arn:aws:iam::12345:role/x"));
        assert!(!is_aws_role_arn("arn:aws:s3:::bucket"));
    }
}

//! The `<<…>>` references a request may carry: `<<CREDENTIAL.slug>>` (a stored credential's
//! value), `<<secret>>` (inside a credential's own fetch: its `http_request_secret`) and
//! `<<PREVIOUS_STEP.path>>` (inside a MULTI_REQUEST's second request: a value of the first
//! response). Anything else between `<<` and `>>` is not ours and is left as written.

/// One reference found in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference<'a> {
    Credential(&'a str),
    Secret,
    PreviousStep(&'a str),
}

/// Splits `<<inner>>` into a reference, when `inner` is one of ours.
fn parse(inner: &str) -> Option<Reference<'_>> {
    let inner = inner.trim();
    let inner = inner.strip_prefix('.').unwrap_or(inner);
    if inner == "secret" {
        return Some(Reference::Secret);
    }
    if let Some(slug) = inner.strip_prefix("CREDENTIAL.") {
        // No slug is longer than a name (255): a longer one names nothing and is not looked up.
        let valid = (1..=255).contains(&slug.len())
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        return valid.then_some(Reference::Credential(slug));
    }
    inner
        .strip_prefix("PREVIOUS_STEP.")
        .filter(|p| !p.is_empty())
        .map(Reference::PreviousStep)
}

/// Every reference in `text`, in order.
pub fn references(text: &str) -> Vec<Reference<'_>> {
    let mut found = Vec::new();
    let _ = replace(text, |r| {
        found.push(r);
        Ok::<_, ()>(None)
    });
    found
}

/// `text` with each reference replaced by what `value` answers (`None` keeps it as written).
pub fn replace<'a, E>(
    text: &'a str,
    mut value: impl FnMut(Reference<'a>) -> Result<Option<String>, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<<") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(">>") else { break };
        out.push_str(&rest[..start]);
        let whole = &rest[start..start + 2 + end + 2];
        match parse(&after[..end]).map(&mut value).transpose()? {
            Some(Some(v)) => out.push_str(&v),
            _ => out.push_str(whole),
        }
        rest = &rest[start + 2 + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_kind_of_reference() {
        let text = "Bearer <<CREDENTIAL.api_key>> <<secret>>/<<PREVIOUS_STEP.body.token>> \
                    <<.CREDENTIAL.legacy>> <<other.formula>> <<CREDENTIAL.Bad-Slug>> <<unclosed";
        assert_eq!(
            references(text),
            vec![
                Reference::Credential("api_key"),
                Reference::Secret,
                Reference::PreviousStep("body.token"),
                Reference::Credential("legacy"),
            ]
        );
    }

    #[test]
    fn replaces_ours_and_keeps_the_rest() {
        let out = replace(
            "a<<CREDENTIAL.x>>b<<NOT.ours>>c<<secret>>",
            |r| -> Result<_, ()> {
                Ok(match r {
                    Reference::Credential("x") => Some("X".to_owned()),
                    _ => None,
                })
            },
        )
        .expect("no error");
        assert_eq!(out, "aXb<<NOT.ours>>c<<secret>>");
        let failed = replace("<<CREDENTIAL.x>>", |_| Err::<Option<String>, _>("stop"));
        assert_eq!(failed, Err("stop"));
    }
}

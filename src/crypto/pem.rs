//! PEM, through the `pem` crate (the copy jsonwebtoken already uses): encoding the keys we
//! generate, and reading the block labels of PEM text users send.

/// `der` in a PEM envelope with 64-character lines.
pub fn encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The labels of the PEM blocks in `text` (`CERTIFICATE`, `PRIVATE KEY`, …), or None if a
/// block is malformed (unmatched markers, bad base64). Text outside blocks is ignored.
pub fn labels(text: &str) -> Option<Vec<String>> {
    let blocks = pem::parse_many(text).ok()?;
    let begins = text.matches("-----BEGIN ").count();
    // `parse_many` skips a block it cannot match; a dangling BEGIN is malformed here.
    (blocks.len() == begins).then(|| blocks.iter().map(|b| b.tag().to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_need_matching_markers_and_base64() {
        assert_eq!(
            labels("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Some(vec!["CERTIFICATE".into()])
        );
        assert_eq!(
            labels("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"),
            None
        );
        assert_eq!(labels("-----BEGIN CERTIFICATE-----\nAAAA\n"), None);
        assert_eq!(labels("no pem"), Some(vec![]));
    }

    #[test]
    fn encode_round_trips() {
        let text = encode("PRIVATE KEY", &[1, 2, 3]);
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(labels(&text), Some(vec!["PRIVATE KEY".into()]));
    }
}

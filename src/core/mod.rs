//! The domain: credential families, organizations, teams, tokens and audit.
//! Free of HTTP types; may depend on `crypto` and `store`.

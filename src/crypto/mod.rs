//! Cryptography: the keyring (AEAD at rest), secret generation and hashing.
//! Depends on nothing else in the crate, so it can be reviewed and tested on
//! its own; aws-lc-rs is the only crypto backend.
pub mod keyring;
pub mod secret;
pub mod signing;

pub use keyring::{Aad, CryptoError, DataKey, KeyError, Keyring, MasterKey};
pub use secret::{Pepper, TOKEN_PREFIX, generate_management_token, looks_like_management_token};

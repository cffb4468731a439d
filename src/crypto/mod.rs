//! Cryptography: the keyring (AEAD at rest), secret generation and hashing.
//! Depends on nothing else in the crate.

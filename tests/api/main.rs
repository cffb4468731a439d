//! Black-box tests of the running server. A test runs on SQLite and, when
//! `LATCHKEY_TEST_DATABASE_URL` is set, on PostgreSQL (see `helpers::both_engines!`), unless
//! nothing it checks depends on the engine (`helpers::one_engine!`: SQLite only).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod commercelayer;
mod egress;
mod feed;
mod issuer;
mod limits;
mod native;
mod ops;
mod pingone;
mod startup;
mod sunshine;
mod tines;

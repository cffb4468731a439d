//! Latchkey: builds the server from a [`config::Config`].
pub mod api;
pub mod config;
pub mod core;
pub mod crypto;
pub mod store;

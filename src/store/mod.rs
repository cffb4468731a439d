//! SQL storage.

//! HTTP surfaces.

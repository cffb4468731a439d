//! Tines: teams, folders and user credentials in all seven modes (TEXT, JWT, OAUTH, AWS,
//! MTLS, HTTP_REQUEST_AGENT, MULTI_REQUEST), with their secret inputs sealed at rest and
//! never returned. `api` is the wire format (`/api/v1/…`), `service` the rules, `mode` the
//! per-mode validation, `model` the types, `pagination` pages, `store` the SQL, and `usage`
//! the routes that use credentials through the egress engine (`crate::egress`).

use crate::{
    egress::Egress,
    kernel::{
        Kernel,
        http::{PublicUrl, extract::HasKernel},
    },
};

pub mod api;
pub mod connect;
pub mod mode;
pub mod model;
pub mod pagination;
pub mod records;
pub mod service;
pub mod store;
pub mod usage;

pub use api::TinesSurface;

/// The Tines family: its service, and the state of its routes.
#[derive(Clone)]
pub struct Tines {
    kernel: Kernel,
    public_url: PublicUrl,
    egress: Egress,
    records: std::sync::Arc<records::Recorder>,
}

impl Tines {
    pub fn new(kernel: &Kernel, public_url: PublicUrl, egress: Egress) -> Self {
        Self {
            kernel: kernel.clone(),
            public_url,
            egress,
            records: Default::default(),
        }
    }
}

impl HasKernel for Tines {
    fn kernel(&self) -> &Kernel {
        &self.kernel
    }
}

//! certplane's domain core: entities and their state machines, the one domain error enum,
//! the clock, and the `Store` trait. No sockets, no SQL, no wire formats live here.

pub mod accounts;
pub mod audit;
pub mod authz;
pub mod billing;
pub mod billing_groups;
pub mod billing_transfers;
pub mod ca_certificates;
pub mod certificates;
pub mod claims;
pub mod clock;
pub mod device_certificates;
pub mod device_endpoints;
pub mod error;
pub mod held_cas;
pub mod iam;
pub mod ids;
pub mod metrics;
pub mod mqtt_instances;
pub mod oauth;
pub mod orders;
pub mod packages;
pub mod paging;
pub mod policies;
pub mod provisioning;
pub mod provisioning_templates;
pub mod register_thing;
pub mod registry;
pub mod replay;
pub mod revocation;
pub(crate) mod scoped;
pub mod secrets;
pub mod service;
pub mod store;
pub mod tags;
pub mod thing_groups;
pub mod thing_types;
pub mod things;
pub mod throttle;
pub mod transfers;
pub mod user_certificates;
pub mod users;

pub use clock::Clock;
pub use error::DomainError;
pub use ids::{CertificateId, Scope};
pub use service::Core;

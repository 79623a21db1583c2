//! Wire dialects: one module per cloud API. Each does routing, signature checking,
//! request/response shapes and the mapping of domain errors to that cloud's wire errors —
//! and nothing else: business rules live in `certplane-core`.

pub mod aliyun;
pub mod aws_iot;
pub mod azure_billing;
pub mod wire;

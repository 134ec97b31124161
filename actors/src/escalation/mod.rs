//! Escalation policies: who is told, through which channels, and when.

mod policy;

pub use policy::{EscalationPolicies, EscalationPolicy, EscalationStep, PolicyError};

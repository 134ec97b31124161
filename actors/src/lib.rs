//! The incidentd engine: alerts go in, incidents live as supervised actors,
//! ordered events come out. No network code lives here; the engine talks to
//! the world through the traits in [`ports`].

pub mod escalation;
pub mod model;
pub mod routing;

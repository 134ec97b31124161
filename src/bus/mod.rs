//! The in-process event bus: every incident event the engine emits goes
//! through here, in one total order, to live subscribers (SSE), to a bounded
//! replay buffer (for clients that reconnect), and to listeners such as the
//! notifier.

mod event_bus;
mod filter;
mod shared_event;

pub use event_bus::{EventBus, EventListener, Resume};
pub use filter::EventFilter;
pub use shared_event::SharedEvent;

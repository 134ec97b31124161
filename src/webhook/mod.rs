//! Signed HTTP POSTs with retries, shared by the notifier's webhook
//! channels and webhook subscriptions: one attempt (`Endpoint`), the retry
//! schedule around it (`deliver`), and the signature receivers verify.

mod endpoint;
mod retry;
#[cfg(test)]
pub mod scripted;
mod signature;

pub use endpoint::{Attempt, Endpoint, Failure, Post, Request};
pub use retry::{deliver, Outcome, Retry};
pub use signature::{signature, IDEMPOTENCY_HEADER, SIGNATURE_HEADER};

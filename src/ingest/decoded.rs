use incidentd_actors::model::{Alert, FieldError};
use thiserror::Error;

/// A body that could not be read at all (as opposed to one bad item in it).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("malformed JSON at line {line} column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{0}")]
    Shape(String),
}

impl From<serde_json::Error> for BodyError {
    fn from(e: serde_json::Error) -> Self {
        BodyError::Json {
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        }
    }
}

/// serde_json appends " at line L column C", which the error says already.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// One invalid item of a batch, by its position.
#[derive(Debug, PartialEq)]
pub struct Rejected {
    pub index: usize,
    pub errors: Vec<FieldError>,
}

/// A batch split into the alerts to take and the items refused.
#[derive(Debug, Default, PartialEq)]
pub struct Decoded {
    pub accepted: Vec<Alert>,
    pub rejected: Vec<Rejected>,
}

impl Decoded {
    /// Validates `alert` and files it as accepted or rejected at `index`.
    pub fn push(&mut self, index: usize, alert: Result<Alert, Vec<FieldError>>) {
        match alert.and_then(|a| a.validate().map(|()| a)) {
            Ok(alert) => self.accepted.push(alert),
            Err(errors) => self.rejected.push(Rejected { index, errors }),
        }
    }
}

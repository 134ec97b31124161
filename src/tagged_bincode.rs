//! One format byte, then bincode: the binary form of the service's own
//! records that started as JSON (alerts on the keyed topic, summaries in
//! Redis). JSON starts with `{`, so the first byte tells a reader which
//! form a record of an earlier build is in.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Most bytes decoding may allocate: more than any record, so only a
/// corrupt length reaches it.
const MAX_DECODED: usize = 64 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODED>()
}

/// `format`, then `value` in bincode.
pub fn encode(format: u8, value: &impl Serialize) -> Vec<u8> {
    let mut bytes = vec![format];
    bincode::serde::encode_into_std_write(value, &mut bytes, config())
        .expect("writing to a Vec cannot fail and the service's records always serialize");
    bytes
}

/// Why a body (what follows the format byte) could not be read.
#[derive(Debug, PartialEq)]
pub enum DecodeError {
    Invalid(String),
    /// The value ended this many bytes before the body did.
    Trailing(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Invalid(reason) => f.write_str(reason),
            DecodeError::Trailing(count) => write!(f, "{count} trailing bytes"),
        }
    }
}

/// Reads one value that must fill `body`, the bytes after the format byte.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let (value, read) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| DecodeError::Invalid(e.to_string()))?;
    match body.len() - read {
        0 => Ok(value),
        trailing => Err(DecodeError::Trailing(trailing)),
    }
}

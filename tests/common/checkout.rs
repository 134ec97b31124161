//! Where the checkout under test is. The service's unit tests compile this
//! file too (see `src/test_support.rs`).

use std::path::PathBuf;

/// The checkout running the test, read at run time: `env!` would name the
/// one that compiled it, and a target dir shared by two checkouts can hand
/// one's test binary to the other.
pub fn checkout_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"))
}

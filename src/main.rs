//! The incidentd binary. The engine lives in `actors/`; the service around
//! it (CLI, HTTP ingest, REST API, stores) is the next milestone.

fn main() {
    eprintln!(
        "incidentd {}: the `serve` command is not built yet; the engine crate (actors/) is. See README.md.",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}

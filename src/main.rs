//! The incidentd command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use incidentd::config::{self, Overrides};

// Many small, short-lived allocations per alert on every core: glibc's
// malloc spent about a quarter of the engine's time in its arenas
// (benches/README.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Incident management: alerts in (Alertmanager, PagerDuty Events v2,
/// native JSON), incidents with escalation out.
///
/// Settings come from built-in defaults, then the config file, then
/// environment variables `INCIDENTD__SECTION__KEY` (e.g.
/// `INCIDENTD__SERVER__LISTEN=127.0.0.1:9000`), then the flags below.
/// `config/default.toml` documents every key.
#[derive(Parser)]
#[command(name = "incidentd", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service. With no config it listens on 127.0.0.1:8080 and keeps
    /// its data in ./data.
    Serve {
        /// TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on, e.g. 127.0.0.1:8080 (overrides server.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory for the embedded snapshot store (overrides server.data_dir).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check a config file (syntax, routing tree, policies, channels) and
    /// print every error with where it is.
    CheckConfig {
        /// TOML config file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => {
            match config::load(Some(&file), std::env::vars(), &Overrides::default()) {
                Ok(_) => {
                    println!("{}: ok", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            let overrides = Overrides { listen, data_dir };
            let config = match config::load(config.as_deref(), std::env::vars(), &overrides) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("incidentd: {e}");
                    return ExitCode::FAILURE;
                }
            };
            incidentd::telemetry::init_logging(config.server.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("incidentd: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(incidentd::server::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "incidentd failed");
                    eprintln!("incidentd: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

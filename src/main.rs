//! The `latchkey` command line: a thin layer over the library.
//! Exit codes: 0 success, 1 runtime failure, 2 bad configuration or usage.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use latchkey::{Config, Server, config::LogFormat, kernel::audit::Verification};
use secrecy::ExposeSecret;

/// mimalloc: a request allocates and frees dozens of small blocks, which glibc's malloc
/// made a third of the hot path's instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "latchkey",
    version,
    about = "Issue and verify credentials; keep and use outbound ones."
)]
struct Cli {
    /// A TOML file with settings (LATCHKEY_* environment variables override it).
    #[arg(long, global = true, env = "LATCHKEY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (SQLite in ./latchkey-data and 127.0.0.1:8080 unless configured).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Management tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a token and print it once to stdout.
    Create {
        /// A server-admin token (creates organizations and their tokens).
        #[arg(long, required = true)]
        admin: bool,
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every organization's hash chain; names the first broken link.
    Verify,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("latchkey: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    // A panic's message can carry request data: log where it happened, never what it said.
    std::panic::set_hook(Box::new(|info| {
        let at = info.location().map(ToString::to_string);
        tracing::error!(location = at.as_deref().unwrap_or("?"), "panic");
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(message) => {
            tracing::error!(error = %message, "latchkey stopped");
            eprintln!("latchkey: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<ExitCode, String> {
    let latchkey = latchkey::open(&config).await.map_err(|e| e.to_string())?;
    match command {
        Command::Serve => {
            let listener = latchkey::bind(&config).await.map_err(|e| e.to_string())?;
            if let Some(token) = latchkey
                .create_admin_token("bootstrap", true)
                .await
                .map_err(|e| e.to_string())?
            {
                // stdout, never the log: this is the only time the token is shown.
                println!(
                    "Server-admin token (shown once, store it now): {}",
                    token.expose_secret()
                );
            }
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            tracing::info!(%addr, engine = latchkey.store().engine(), "latchkey listening");
            Server::new(latchkey, &config)
                .map_err(|e| e.to_string())?
                .run(listener, latchkey::shutdown_signal())
                .await
                .map_err(|e| e.to_string())?;
        }
        Command::Migrate => {
            tracing::info!(engine = latchkey.store().engine(), "migrations applied");
        }
        Command::Token {
            command: TokenCommand::Create { admin: _, name },
        } => {
            let token = latchkey
                .create_admin_token(&name, false)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(token) = token {
                println!("{}", token.expose_secret());
            }
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => match latchkey.verify_audit().await.map_err(|e| e.to_string())? {
            Verification::Intact { chains, events } => {
                println!("audit log intact: {events} events in {chains} chains");
            }
            Verification::Broken {
                chain,
                seq,
                event_id,
                reason,
            } => {
                let chain = if chain.is_empty() {
                    "server".to_owned()
                } else {
                    format!("organization {chain}")
                };
                let event = event_id
                    .map(|id| format!(" (event {id})"))
                    .unwrap_or_default();
                println!("audit log BROKEN in {chain} at sequence {seq}{event}: {reason}");
                return Ok(ExitCode::FAILURE);
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A closed stderr must not turn every log line into a panic (tracing would eprintln!).
        .log_internal_errors(false);
    match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Pretty => builder.init(),
    }
}

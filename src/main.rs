//! The `strato` binary: parses the command line, sets up logging and runs a subcommand.

use anyhow::Context;
use strato::config::{Cli, Command, LogFormat, SegmentCommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // Fatal start-up or command errors: one readable line, no backtrace.
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    limit_malloc_arenas();
    let cli = Cli::parse_all()?;
    init_tracing(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start tokio runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                let config = args.validate()?;
                let shutdown = CancellationToken::new();
                tokio::spawn(signal_shutdown(shutdown.clone(), config.shutdown_timeout));
                strato::server::run(config, shutdown).await
            }
            Command::Segment(SegmentCommand::Dump(args)) => strato::cli::segment::dump(args).await,
            Command::Group(command) => strato::cli::group::run(command).await,
            Command::Bench(command) => strato::cli::bench::run(command).await,
            Command::Cluster(strato::config::ClusterCommand::Status(args)) => {
                strato::cli::cluster_status::run(args).await
            }
            Command::Topic(command) => strato::cli::topic::run(command).await,
            Command::Produce(args) => strato::cli::produce::run(args).await,
            Command::Consume(args) => strato::cli::consume::run(args).await,
            Command::Replay(args) => strato::cli::replay::run(*args).await,
            Command::User(command) => strato::cli::user::run(command).await,
            Command::Transaction(command) => strato::cli::transaction::run(command).await,
            Command::Acl(command) => strato::cli::acl::run(command).await,
        }
    })
}

/// glibc's allocator gives each thread that contends for memory its own arena, up to 8 per
/// core, and keeps memory freed in an arena for reuse there. With the broker's megabyte
/// buffers (request frames, chunk buffers, cached chunks) allocated on one thread and freed
/// on another, that retained memory was half the peak RSS: 0.9–1.1 GB under `strato bench
/// consume --partitions 12` with 256 MiB of cache, against 0.6–0.7 GB with one arena per
/// core, at the same CPU per GiB (docs/BENCHMARKS.md). One arena per core, unless
/// `MALLOC_ARENA_MAX` says otherwise. Called before any other thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
    // SAFETY: `mallopt` only sets a parameter of glibc's allocator (it takes the allocator's
    // own lock); no memory is touched, and no other thread of ours exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn init_tracing(format: LogFormat) {
    // foyer's INFO lines (cache builder defaults, close timings) say nothing to a user.
    let filter = EnvFilter::try_from_env("STRATO_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,foyer=warn,foyer_storage=warn,foyer_memory=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Cancels `shutdown` at the first SIGTERM or SIGINT, then bounds the drain: the process
/// exits with status 1 at a second signal or once `timeout` has passed (a drain can wait
/// on an unreachable metadata or object store for much longer: the flusher's reload of an
/// uncertain commit retries for half an hour). Exiting loses nothing acknowledged.
async fn signal_shutdown(shutdown: CancellationToken, timeout: std::time::Duration) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("failed to install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => tracing::error!("second SIGTERM: exiting without finishing the drain"),
        _ = int.recv() => tracing::error!("second SIGINT: exiting without finishing the drain"),
        _ = tokio::time::sleep(timeout) => tracing::error!(
            ?timeout,
            "the drain did not finish within --shutdown-timeout-ms (a dependency unreachable?): \
             exiting; acknowledged records are durable, producers retry the rest"
        ),
    }
    std::process::exit(1);
}

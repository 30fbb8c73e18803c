//! `strato bench`: `replay` (`bench_replay`: a cold replay from object storage) and the load
//! benchmarks `produce`, `consume` and `e2e` (`bench_load`). Each starts its own broker or
//! uses one given with `--bootstrap`, reports and asserts nothing about speed.

use anyhow::bail;

use super::bench_replay::{render, replay};
use super::{bench_load, bench_load_report};
use crate::config::bench::{BenchCommand, BenchLoadConfig};

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Replay(args) => {
            let config = args.validate()?;
            // Ctrl-C or SIGTERM drops the benchmark, and with it the broker process (killed
            // by pid) and the temporary data dir.
            let report = tokio::select! {
                report = replay(&config) => report?,
                signal = interrupted() => bail!("{signal}: benchmark stopped"),
            };
            print!("{}", render(&config, &report));
            Ok(())
        }
        BenchCommand::Produce(args) => run_load(args.validate()?).await,
        BenchCommand::Consume(args) => run_load(args.validate()?).await,
        BenchCommand::E2e(args) => run_load(args.validate()?).await,
    }
}

async fn run_load(config: BenchLoadConfig) -> anyhow::Result<()> {
    // As for replay: an interruption drops the run, which kills the broker it started.
    let report = tokio::select! {
        report = bench_load::run(&config) => report?,
        signal = interrupted() => bail!("{signal}: benchmark stopped"),
    };
    print!("{}", bench_load_report::render(&config, &report));
    Ok(())
}

pub(super) async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

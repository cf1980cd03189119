//! The developer's command line: run the pipeline locally, produce readings, invoke the handler.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use reactor_monitor::local::generate::Mix;
use reactor_monitor::local::resources::ResourceNames;
use reactor_monitor::local::run::LocalOptions;
use reactor_monitor::local::{commands, run};

/// Reactor coolant temperature monitor: Kinesis → Lambda → DynamoDB, SNS alerts, dead letters.
///
/// Everything here runs on one machine with no AWS account: without --endpoint (or the
/// standard AWS_ENDPOINT_URL), a local AWS emulator is started on 127.0.0.1 and stopped
/// at the end. Resource names default to the SAM template's.
#[derive(Parser)]
#[command(name = "reactor-monitor", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline locally and prove that nothing was lost.
    ///
    /// Puts readings into the emulated stream, drives the shipped handler through an
    /// emulated event source mapping (batch size, batching window, partial-failure
    /// checkpointing, bisect on error, bounded retries, on-failure destination), then
    /// reads DynamoDB, the dead-letter bucket and the on-call queue back.
    /// Exits non-zero when a record was lost or the run could not finish.
    ///
    /// Example: reactor-monitor local --readings 10000 --shards 2 --json
    Local(LocalArgs),
    /// Put generated readings into a stream, like the Kinesis Data Generator.
    ///
    /// Example: reactor-monitor generate --endpoint http://127.0.0.1:5000 --count 500 --rate 100
    Generate(GenerateArgs),
    /// Run the handler once on a Kinesis event JSON file and print its response.
    ///
    /// The file is an event as Lambda sends it ({"Records":[{"kinesis":{...},...}]}), like
    /// `sam local invoke --event`. Prints {"batchItemFailures":[...]}.
    ///
    /// Example: reactor-monitor invoke --event tests/fixtures/kinesis-event.json
    Invoke(InvokeArgs),
}

#[derive(Args)]
struct Endpoint {
    /// AWS endpoint to use (a local emulator); defaults to AWS_ENDPOINT_URL, else a new
    /// emulator is started on 127.0.0.1.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
}

#[derive(Args)]
struct MixArgs {
    /// Number of distinct reactors.
    #[arg(long, default_value_t = 12)]
    reactors: usize,
    /// Share of readings at or above the warning threshold (700 °C) and below emergency.
    #[arg(long, default_value_t = 0.04)]
    warning_share: f64,
    /// Share of readings at or above the emergency threshold (800 °C).
    #[arg(long, default_value_t = 0.01)]
    emergency_share: f64,
    /// Share of corrupted payloads (dead-lettered by the handler).
    #[arg(long, default_value_t = 0.02)]
    corrupt_share: f64,
    /// Seed of the generator: the same seed gives the same readings.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

impl MixArgs {
    fn mix(&self) -> anyhow::Result<Mix> {
        let shares = [self.warning_share, self.emergency_share, self.corrupt_share];
        if shares.iter().any(|s| !(0.0..=1.0).contains(s)) || shares.iter().sum::<f64>() > 1.0 {
            anyhow::bail!("shares must each be between 0 and 1 and add up to at most 1");
        }
        Ok(Mix {
            reactors: self.reactors.max(1),
            warning_share: self.warning_share,
            emergency_share: self.emergency_share,
            corrupt_share: self.corrupt_share,
            seed: self.seed,
        })
    }
}

#[derive(Args)]
struct LocalArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// How many generated readings to put into the stream.
    #[arg(long, default_value_t = 1_000)]
    readings: usize,
    /// JSON Lines of Kinesis records instead of generated readings, one per line:
    /// {"data": "<base64 payload>", "partitionKey": "<optional>"}.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Records per invocation (the event source mapping's BatchSize).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
    /// Shards of the stream (when the run creates it).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    shards: u32,
    /// Maximum batching window in milliseconds.
    #[arg(long, default_value_t = 500)]
    batching_window_ms: u64,
    /// Retries of a failing batch before it goes to the on-failure destination.
    #[arg(long, default_value_t = 5)]
    max_retries: u32,
    #[command(flatten)]
    mix: MixArgs,
    /// Print one JSON object with the counts and the read-back at the end, nothing else.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GenerateArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Stream to put readings into.
    #[arg(long, default_value = reactor_monitor::config::defaults::STREAM_NAME)]
    stream: String,
    /// Number of readings (default 1000 unless --duration is given).
    #[arg(long)]
    count: Option<usize>,
    /// Keep producing for this many seconds (needs --rate).
    #[arg(long, requires = "rate")]
    duration: Option<f64>,
    /// Readings per second (unlimited when absent).
    #[arg(long)]
    rate: Option<f64>,
    #[command(flatten)]
    mix: MixArgs,
}

#[derive(Args)]
struct InvokeArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// A Kinesis event JSON file, as Lambda sends it.
    #[arg(long, value_name = "FILE")]
    event: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    reactor_monitor::telemetry::init_cli_logs();
    match dispatch(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Local(args) => {
            let options = LocalOptions {
                endpoint: args.endpoint.endpoint,
                readings: args.readings,
                input: args.input,
                batch_size: args.batch_size as usize,
                shards: args.shards,
                mix: args.mix.mix()?,
                batching_window: Duration::from_millis(args.batching_window_ms),
                maximum_retry_attempts: args.max_retries,
                names: ResourceNames::default(),
                show_progress: !args.json,
                ..LocalOptions::default()
            };
            let report = run::run(options).await?;
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", commands::human_report(&report));
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Generate(args) => {
            let count = match (args.count, args.duration, args.rate) {
                (Some(n), _, _) => n,
                (None, Some(secs), Some(rate)) => (secs * rate).ceil() as usize,
                _ => 1_000,
            };
            commands::generate(
                args.endpoint.endpoint,
                &args.stream,
                count,
                args.rate,
                &args.mix.mix()?,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke(args) => {
            let response = commands::invoke(args.endpoint.endpoint, &args.event).await?;
            println!("{response}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

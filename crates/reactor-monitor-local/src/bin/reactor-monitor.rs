//! The developer's command line: run the pipeline locally, produce readings, invoke the handler.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use reactor_monitor_local::generate::Mix;
use reactor_monitor_local::on_call::SilenceCheckAt;
use reactor_monitor_local::report::{FlowReport, Headline};
use reactor_monitor_local::resources::ResourceNames;
use reactor_monitor_local::run::LocalOptions;
use reactor_monitor_local::scenario::{self, Scenario};
use reactor_monitor_local::{commands, generate, run, up};

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
    /// checkpointing, bisect on error, bounded retries, on-failure destination), runs the
    /// scheduled silence check once, then reads DynamoDB, the dead-letter bucket, the alerts
    /// queue and the on-call queue back. Exits non-zero when a record was lost, an alert or an
    /// on-call page is missing or duplicated, or the run could not finish.
    ///
    /// Example: reactor-monitor local --readings 10000 --shards 2 --json
    Local(LocalArgs),
    /// Put generated readings into a stream, like the Kinesis Data Generator, or write them to
    /// a file.
    ///
    /// With --endpoint (or AWS_ENDPOINT_URL): an emulator, dummy credentials. Without: the
    /// deployed stream in AWS, with your usual credentials and region (like the AWS CLI).
    /// With --aggregate N, like a producer using the Kinesis Producer Library: up to N
    /// readings per Kinesis record. With --output FILE: the records as JSON Lines for
    /// `local --input FILE`, nothing put. With --scenario NAME: a scripted dataset.
    ///
    /// Example: reactor-monitor generate --endpoint http://127.0.0.1:5000 --count 500 --rate 100
    ///
    /// Example: reactor-monitor generate --scenario episodes --output episodes.jsonl
    Generate(GenerateArgs),
    /// Run the handler once on a Kinesis event JSON file and print its response.
    ///
    /// The file is an event as Lambda sends it ({"Records":[{"kinesis":{...},...}]}), like
    /// `sam local invoke --event`. Prints {"batchItemFailures":[...]}.
    ///
    /// Example: reactor-monitor invoke --event events/kinesis-event.json
    Invoke(InvokeArgs),
    /// Run the local stack until Ctrl-C, for any producer: the AWS CLI, `generate`, your code.
    ///
    /// Starts (or attaches to, with --endpoint) the emulator, creates the resources, prints
    /// them with ready-to-paste AWS CLI commands, then drives the shipped handler through the
    /// emulated event source mapping. On a terminal a live view shows the unique flows, the
    /// last alerts and rejections and the iterator age per shard; otherwise one line per
    /// record. Ctrl-C (or SIGTERM) lets the batch in flight finish, then stops the emulator
    /// it started.
    ///
    /// Example: reactor-monitor up --report flows.html
    Up(UpArgs),
    /// Draw a local run as one self-contained HTML page: flow map, unique flows, one trace
    /// per flow, temperature per reactor.
    ///
    /// Example: reactor-monitor local --json > run.json && reactor-monitor report run.json -o flows.html
    Report(ReportArgs),
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

#[derive(Args)]
struct AggregateArgs {
    /// Pack up to N readings into each Kinesis record, in the Kinesis Producer Library's
    /// aggregation format.
    ///
    /// A shard accepts at most 1,000 records/s, so producers above that rate aggregate many
    /// user records into one Kinesis record (up to 1 MiB): a magic number, a protobuf list
    /// of records with their partition keys, and an MD5 digest. The handler unpacks each
    /// aggregate and treats every reading in it as its own record: its own outcome, trace and
    /// DynamoDB key (`…#<sequence number>:<position>`); a failed reading makes Lambda retry
    /// the whole aggregate (Kinesis knows only the aggregate), which the idempotent keys make
    /// safe. Corrupted readings stay individual bad readings inside a valid aggregate.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    aggregate: Option<u32>,
}

impl AggregateArgs {
    fn per_record(&self) -> Option<usize> {
        self.aggregate.map(|n| n as usize)
    }
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
    #[command(flatten)]
    aggregate: AggregateArgs,
    /// A scripted dataset instead of generated readings: episodes (see --help).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["input", "readings"], long_help = scenario::HELP)]
    scenario: Option<Scenario>,
    /// When the scheduled silence check runs, once the stream is drained: after-data,
    /// never, or an RFC 3339 instant (its clock).
    ///
    /// after-data: on the readings' clock, SILENCE_MINUTES (5) and one minute (the lag of the
    /// stored last reading) after the newest reading of the run, so that every reactor of the
    /// run pages `silent` once, as the scheduled check would once its sensors stopped.
    #[arg(long, value_name = "WHEN", default_value = "after-data")]
    silence_check: SilenceCheckAt,
    /// Print one JSON object with the counts and the read-back at the end, nothing else.
    #[arg(long)]
    json: bool,
    /// Inject faults between the handler and the emulator, through a proxy on 127.0.0.1.
    ///
    /// SPEC is comma-separated key=value: rate=P (probability of a fault per request, for
    /// every service), dynamodb=P, sns=P, s3=P, kinesis=P, sqs=P (per service, overriding
    /// rate), kinds=throttle+500+503+drop (what a fault is, each equally likely; default
    /// all), latency-ms=N (added to every request), seed=N. Throttles are each service's own
    /// error (ProvisionedThroughputExceededException, Throttling, SlowDown); drop closes the
    /// connection unanswered. The producer and the read-back are never faulted. What was
    /// injected is printed on stderr at the end.
    ///
    /// Example: --faults rate=0.05,latency-ms=20,seed=1 or --faults dynamodb=0.05,sns=0.05,s3=0.02
    #[arg(long, value_name = "SPEC", env = reactor_monitor_local::faults::FAULTS_ENV)]
    faults: Option<reactor_monitor_local::faults::FaultSpec>,
    /// Also write the flows as one self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Run the function's spans through the real collector of FILE's Lambda layer (its
    /// `# layer:` line; built once by scripts/build-collectors), as the layer would, with its
    /// exporters pointed at the local receiver and the sigv4auth extension dropped.
    ///
    /// Example: --collector otel-collector/collector.yaml
    #[arg(long, value_name = "FILE")]
    collector: Option<PathBuf>,
    /// Also send the spans to Jaeger v2 (built once by scripts/build-jaeger), every port on
    /// 127.0.0.1, query API and UI on http://127.0.0.1:16686; it keeps running after the run
    /// until Ctrl-C.
    #[arg(long)]
    jaeger: bool,
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
    #[command(flatten)]
    aggregate: AggregateArgs,
    /// A scripted dataset instead of the random mix: episodes (see --help).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["count", "duration"], long_help = scenario::HELP)]
    scenario: Option<Scenario>,
    /// Write the records to FILE as JSON Lines, as `local --input` reads them (`-`: stdout),
    /// instead of putting them into a stream.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["endpoint", "rate", "duration"])]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct InvokeArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// A Kinesis event JSON file, as Lambda sends it.
    #[arg(long, value_name = "FILE")]
    event: PathBuf,
}

#[derive(Args)]
struct UpArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// Kinesis stream the event source mapping reads.
    #[arg(long, default_value = reactor_monitor::config::defaults::STREAM_NAME)]
    stream: String,
    /// DynamoDB table of readings.
    #[arg(long, default_value = reactor_monitor::config::defaults::TABLE_NAME)]
    table: String,
    /// SNS topic of alerts.
    #[arg(long, default_value = reactor_monitor::config::defaults::ALERT_TOPIC_NAME)]
    topic: String,
    /// S3 bucket of dead letters.
    #[arg(long, default_value = reactor_monitor::config::defaults::DEAD_LETTER_BUCKET)]
    dead_letter_bucket: String,
    /// SQS queue subscribed to the alert topic (one message per hot reading).
    #[arg(long, default_value = reactor_monitor::config::defaults::ALERTS_QUEUE_NAME)]
    alerts_queue: String,
    /// SQS queue subscribed to the on-call topic (one message per episode transition).
    #[arg(long, default_value = reactor_monitor::config::defaults::ON_CALL_QUEUE_NAME)]
    on_call_queue: String,
    /// Shards of the stream (when up creates it).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    shards: u32,
    /// Records per invocation (the event source mapping's BatchSize).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,
    /// Maximum batching window in milliseconds.
    #[arg(long, default_value_t = 500)]
    batching_window_ms: u64,
    /// trim-horizon (every record the stream holds, as the template) or latest (only new ones).
    #[arg(long, default_value = "trim-horizon")]
    starting_position: reactor_monitor_local::up::StartingPosition,
    /// Write the session's flows as one self-contained HTML page to FILE when it stops.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Run the scheduled silence check every SECONDS (the deployed schedule: every minute),
    /// on the wall clock; the live view says when it last ran and what it found.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    silence_check_every: u64,
}

#[derive(Args)]
struct ReportArgs {
    /// The JSON printed by `reactor-monitor local --json`.
    #[arg(value_name = "RUN_JSON")]
    input: PathBuf,
    /// The HTML page to write.
    #[arg(long, short, default_value = "reactor-monitor-report.html")]
    output: PathBuf,
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
        Command::Local(args) => run_local(args).await,
        Command::Generate(args) => run_generate(args).await,
        Command::Invoke(args) => {
            let response = commands::invoke(args.endpoint.endpoint, &args.event).await?;
            println!("{response}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Up(args) => run_up(args).await,
        Command::Report(args) => {
            let (report, headline) = FlowReport::from_saved_run(&args.input)?;
            report.write_html(&args.output, &headline)?;
            println!("report written to {}", args.output.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `local`: the whole pipeline once; fails when anything was lost.
async fn run_local(args: LocalArgs) -> anyhow::Result<ExitCode> {
    let jaeger = match args.jaeger {
        true => Some(reactor_monitor_local::jaeger::LocalJaeger::start(Some(16686)).await?),
        false => None,
    };
    let options = LocalOptions {
        endpoint: args.endpoint.endpoint,
        readings: args.readings,
        input: args.input,
        batch_size: args.batch_size as usize,
        shards: args.shards,
        mix: args.mix.mix()?,
        aggregate: args.aggregate.per_record(),
        batching_window: Duration::from_millis(args.batching_window_ms),
        maximum_retry_attempts: args.max_retries,
        names: ResourceNames::default(),
        show_progress: !args.json,
        faults: args.faults.clone(),
        collector: args.collector.clone(),
        forward_to: jaeger.as_ref().map(|j| j.otlp_endpoint.clone()),
        scenario: args.scenario,
        silence_check: args.silence_check,
        ..LocalOptions::default()
    };
    let report = run::run(options).await?;
    for note in &report.collector_notes {
        eprintln!("collector: {note}");
    }
    if let Some(spec) = &args.faults {
        eprintln!("faults ({spec}): {}", spec.injected());
    }
    if let Some(path) = &args.report {
        let headline = Headline::local(&report.verdict, &report.endpoint);
        report.flow_report.write_html(path, &headline)?;
        eprintln!("report written to {}", path.display());
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", commands::human_report(&report));
    }
    if let Some(jaeger) = jaeger {
        eprintln!(
            "Jaeger: {}/search?service={} (API: {}/api/traces?service={}); Ctrl-C to stop",
            jaeger.query_url,
            reactor_monitor::telemetry::names::SERVICE_NAME,
            jaeger.query_url,
            reactor_monitor::telemetry::names::SERVICE_NAME
        );
        jaeger.serve_until_ctrl_c().await?;
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `generate`: readings into a stream or a file, by count, by duration and rate, or scripted.
async fn run_generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let readings = match args.scenario {
        Some(scenario) => scenario.records(),
        None => {
            let count = match (args.count, args.duration, args.rate) {
                (Some(n), _, _) => n,
                (None, Some(secs), Some(rate)) => (secs * rate).ceil() as usize,
                _ => 1_000,
            };
            generate::generate(&args.mix.mix()?, count)
        }
    };
    match &args.output {
        Some(path) => commands::write_records(path, readings, args.aggregate.per_record())?,
        None => {
            commands::put_readings(
                args.endpoint.endpoint,
                &args.stream,
                readings,
                args.rate,
                args.aggregate.per_record(),
            )
            .await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `up`: the long-running local stack, until Ctrl-C.
async fn run_up(args: UpArgs) -> anyhow::Result<ExitCode> {
    up::run(up::UpOptions {
        endpoint: args.endpoint.endpoint,
        names: ResourceNames {
            stream: args.stream,
            table: args.table,
            alert_topic: args.topic,
            dead_letter_bucket: args.dead_letter_bucket,
            alerts_queue: args.alerts_queue,
            on_call_queue: args.on_call_queue,
            ..ResourceNames::default()
        },
        shards: args.shards,
        batch_size: args.batch_size as usize,
        batching_window: Duration::from_millis(args.batching_window_ms),
        starting_position: args.starting_position,
        report: args.report,
        silence_check_every: Duration::from_secs(args.silence_check_every),
        ..up::UpOptions::default()
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

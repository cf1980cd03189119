//! `reactor-monitor up`: the local stack, long-running, for the tutorial walkthrough. Starts
//! (or attaches to) the emulator, creates the template's resources, prints them with
//! ready-to-paste AWS CLI commands, then runs the event source mapping over the shipped
//! handler until Ctrl-C or SIGTERM, with a live view drawn from the spans it receives.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use aws_lambda_events::event::streams::KinesisEventResponse;
use chrono::Utc;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::emulator::Emulator;
use crate::esm::{self, FunctionError, Invoke, MappingProgress};
use crate::otlp::OtlpReceiver;
use crate::report::{FlowReport, Headline};
use crate::resources::{self, ResourceNames};
use crate::run::{self, InProcessFunction, LocalOptions};
use reactor_monitor::aws;
use reactor_monitor::config::Config;
use reactor_monitor::function::AwsFunction;
use reactor_monitor::telemetry::function::MetricsSink;
use reactor_monitor::telemetry::traces::{self, TracePlan};

/// How often the live view refreshes (and spans are flushed to the receiver).
/// Spans `up` keeps for its view and report: the most recent ones, so memory stays flat
/// however long it runs (a few KB a span as kept here).
const SPAN_WINDOW: usize = 10_000;
const REFRESH: Duration = Duration::from_secs(1);
/// Beyond the function timeout, how long stopping may wait for the batch in flight.
const STOP_MARGIN: Duration = Duration::from_secs(15);

/// The deployed silence check's schedule: every minute.
pub const SILENCE_CHECK_EVERY: Duration = Duration::from_secs(60);

mod banner;
mod episodes;
mod live_view;

pub use banner::TUTORIAL_READING;
use banner::banner;
use episodes::EpisodeWatch;
use live_view::LiveView;

/// Where `up` starts reading each shard: `--starting-position`.
pub use crate::esm::StartingPosition;

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub endpoint: Option<String>,
    pub names: ResourceNames,
    pub shards: u32,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub maximum_retry_attempts: u32,
    pub function_timeout: Duration,
    pub starting_position: StartingPosition,
    /// Where to write the HTML report when the session stops.
    pub report: Option<PathBuf>,
    pub trace_plan: TracePlan,
    /// How often the scheduled silence check runs (wall clock; the deployed schedule: every
    /// minute).
    pub silence_check_every: Duration,
}

impl Default for UpOptions {
    fn default() -> Self {
        let local = LocalOptions::default();
        Self {
            endpoint: None,
            names: ResourceNames::default(),
            shards: 1,
            batch_size: local.batch_size,
            batching_window: local.batching_window,
            maximum_retry_attempts: local.maximum_retry_attempts,
            function_timeout: local.function_timeout,
            starting_position: StartingPosition::default(),
            report: None,
            trace_plan: TracePlan::default(),
            silence_check_every: SILENCE_CHECK_EVERY,
        }
    }
}

impl UpOptions {
    fn mapping_options(&self) -> LocalOptions {
        LocalOptions {
            batch_size: self.batch_size,
            batching_window: self.batching_window,
            maximum_retry_attempts: self.maximum_retry_attempts,
            function_timeout: self.function_timeout,
            names: self.names.clone(),
            ..LocalOptions::default()
        }
    }
}

/// Runs until Ctrl-C or SIGTERM; then the batch in flight finishes and the emulator that
/// `up` started is stopped.
pub async fn run(options: UpOptions) -> anyhow::Result<()> {
    let attach_to = options
        .endpoint
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    let (emulator, endpoint) = match attach_to {
        Some(url) => (None, url),
        None => {
            let emulator = Emulator::start()
                .await
                .context("starting the local AWS emulator")?;
            let url = emulator.endpoint().to_string();
            (Some(emulator), url)
        }
    };
    let result = serve(&endpoint, &options, emulator.is_some()).await;
    if let Some(emulator) = emulator {
        emulator.stop().await;
        println!("emulator at {endpoint} stopped");
    }
    result
}

async fn serve(endpoint: &str, options: &UpOptions, owns_emulator: bool) -> anyhow::Result<()> {
    let started = Utc::now();
    let sdk = aws::local_sdk_config(endpoint).await;
    let resources = resources::create(&sdk, &options.names, options.shards).await?;
    let receiver = OtlpReceiver::start_bounded(SPAN_WINDOW).await?;
    let provider = traces::otlp_provider(Some(&receiver.endpoint))?;
    let config = run::function_config(&resources, options.trace_plan);
    let function = Arc::new(UpFunction::new(&config, &sdk, &provider));
    let mut settings = run::mapping_settings(&options.mapping_options(), &resources, &sdk, &[]);
    settings.starting_position = options.starting_position.clone();
    let region = settings.region.clone();
    // Opened before the banner: a LATEST start reads every record put once it is printed.
    let mapping = esm::Mapping::open(aws_sdk_kinesis::Client::new(&sdk), settings).await?;

    let mut view = LiveView::new(std::io::stdout().is_terminal());
    view.note(&banner(
        endpoint,
        owns_emulator,
        &region,
        &resources,
        &receiver.endpoint,
        &options.starting_position,
        mapping.shard_ids().len(),
    ));
    let progress = Arc::new(MappingProgress::default());
    let mapping =
        tokio::spawn(mapping.run(aws::s3_client(&sdk), function.clone(), progress.clone()));
    let mut episodes = config
        .episodes
        .as_ref()
        .map(|e| EpisodeWatch::new(e.policy, options.silence_check_every));
    let session = Session {
        progress: &progress,
        receiver: &receiver,
        provider: &provider,
        stop_bound: options.function_timeout + STOP_MARGIN,
        pipeline: &function.function.function.pipeline,
    };
    let result = session
        .until_stopped(
            mapping,
            &mut view,
            episodes.as_mut(),
            endpoint,
            owns_emulator,
        )
        .await;

    run::shut_down_tracing(provider).await?;
    let spans = receiver.spans();
    view.finish(
        &spans,
        receiver.total_received(),
        &progress.shards(),
        &progress,
        &episode_lines(episodes.as_ref()),
    );
    if let Some(path) = &options.report {
        FlowReport::from_spans(&spans, config.thresholds)
            .write_html(path, &Headline::up(endpoint, started, Utc::now()))?;
        println!("report written to {}", path.display());
    }
    result
}

/// What the live view watches while the mapping runs.
struct Session<'a> {
    progress: &'a MappingProgress,
    receiver: &'a OtlpReceiver,
    provider: &'a SdkTracerProvider,
    /// How long the batch in flight may take to finish: its deadline, then a retry or two.
    stop_bound: Duration,
    /// The function's pipeline: its episode store and on-call publisher serve the silence
    /// check and the open episodes.
    pipeline: &'a aws::AwsPipeline,
}

impl Session<'_> {
    async fn until_stopped(
        &self,
        mut mapping: JoinHandle<anyhow::Result<()>>,
        view: &mut LiveView,
        mut episodes: Option<&mut EpisodeWatch>,
        endpoint: &str,
        owns_emulator: bool,
    ) -> anyhow::Result<()> {
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for Ctrl-C")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // The first check one period after the start, as a schedule created now runs.
        let every = episodes.as_ref().map_or(SILENCE_CHECK_EVERY, |e| e.every);
        let mut silence = tokio::time::interval_at(Instant::now() + every, every);
        silence.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Some(watch) = episodes.as_deref() {
            view.episode_event(&[watch.check_line()]);
        }
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
                ended = &mut mapping => {
                    ended.context("the event source mapping panicked")??;
                    bail!("the event source mapping stopped: every shard of the stream is closed");
                }
                _ = silence.tick(), if episodes.is_some() => {
                    let watch = episodes.as_deref_mut().expect("checked");
                    watch.check(&self.pipeline.ledger, &self.pipeline.publisher).await;
                    view.episode_event(&[watch.check_line()]);
                    view.episode_event(&watch.open_lines());
                }
                _ = refresh.tick() => {
                    flush(self.provider).await;
                    if let Some(watch) = episodes.as_deref_mut() {
                        let invocations = self.progress.invocations.load(Ordering::Relaxed);
                        if watch.refresh(&self.pipeline.ledger, invocations).await {
                            view.episode_event(&watch.open_lines());
                        }
                    }
                    view.refresh(
                        &self.receiver.spans(),
                        self.receiver.total_received(),
                        &self.progress.shards(),
                        self.progress,
                        &episode_lines(episodes.as_deref()),
                    );
                }
            }
        }

        self.progress.stop.store(true, Ordering::Relaxed);
        view.note("stopping: the batch in flight finishes first (Ctrl-C again to abort)");
        let ended = tokio::select! {
            ended = &mut mapping => Some(ended),
            _ = next_signal(&mut interrupt, &mut terminate) => None,
            _ = tokio::time::sleep(self.stop_bound) => None,
        };
        let Some(ended) = ended else {
            mapping.abort();
            view.note("aborted: the batch in flight was not checkpointed");
            return Ok(());
        };
        match ended.context("the event source mapping panicked")? {
            Err(e) if owns_emulator && !reachable(endpoint).await => {
                // Ctrl-C in a terminal reaches the whole process group, the emulator too.
                tracing::debug!(error = %e, "the mapping lost the emulator while stopping");
                view.note("the emulator had stopped with the same Ctrl-C");
                Ok(())
            }
            other => other,
        }
    }
}

/// The live view's episode section (none when the function has no episodes).
fn episode_lines(episodes: Option<&EpisodeWatch>) -> Vec<String> {
    episodes.map(EpisodeWatch::frame_lines).unwrap_or_default()
}

async fn next_signal(interrupt: &mut Signal, terminate: &mut Signal) {
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

async fn flush(provider: &SdkTracerProvider) {
    let provider = provider.clone();
    let flushed = tokio::task::spawn_blocking(move || provider.force_flush()).await;
    if let Ok(Err(e)) = flushed {
        tracing::warn!(error = %e, "spans could not be flushed to the local receiver");
    }
}

async fn reachable(endpoint: &str) -> bool {
    let address = endpoint.trim_start_matches("http://").trim_end_matches('/');
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(address)
        )
        .await,
        Ok(Ok(_))
    )
}

/// The function as `up` invokes it: the shipped function, in process, whose EMF lines are
/// checked as CloudWatch reads them.
struct UpFunction {
    function: InProcessFunction,
}

impl UpFunction {
    fn new(config: &Config, sdk: &aws_config::SdkConfig, provider: &SdkTracerProvider) -> Self {
        Self {
            function: InProcessFunction {
                function: AwsFunction::from_config(
                    config,
                    sdk,
                    Some(provider.clone()),
                    MetricsSink::Collect(Mutex::default()),
                ),
                summary: None,
                invoked_function_arn: InProcessFunction::arn(&run::region_of(sdk)),
            },
        }
    }
}

impl Invoke for UpFunction {
    async fn invoke(
        &self,
        event: Vec<u8>,
        deadline: Instant,
    ) -> Result<KinesisEventResponse, FunctionError> {
        let response = self.function.invoke(event, deadline).await;
        // `up` runs for ever: the EMF lines (what CloudWatch would receive) are checked as
        // CloudWatch reads them, not kept.
        let lines = self.function.function.telemetry.take_collected_metrics();
        if let Err(e) = crate::metrics::EmfTotals::from_lines(&lines) {
            tracing::warn!(error = %e, "the function wrote an EMF line CloudWatch would drop");
        }
        response
    }
}

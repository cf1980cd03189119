//! The CLI's commands other than `local`, and the human rendering of a local run.

use std::path::Path;
use std::sync::atomic::AtomicUsize;

use anyhow::Context;
use lambda_runtime::LambdaEvent;
use reactor_monitor::kinesis::KinesisBatch;

use crate::emulator::Emulator;
use crate::generate::{self, Mix, OutgoingRecord};
use crate::resources::{self, ResourceNames};
use crate::run::LocalReport;
use reactor_monitor::aws;
use reactor_monitor::config::{Config, env};
use reactor_monitor::function::AwsFunction;
use reactor_monitor::telemetry::function::MetricsSink;

/// Runs `work` against the given endpoint, `AWS_ENDPOINT_URL`, or a fresh emulator.
async fn with_endpoint<T>(
    endpoint: Option<String>,
    work: impl AsyncFnOnce(&str) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    if let Some(endpoint) = endpoint.or_else(|| std::env::var("AWS_ENDPOINT_URL").ok()) {
        return work(&endpoint).await;
    }
    let emulator = Emulator::start().await?;
    let result = work(emulator.endpoint()).await;
    emulator.stop().await;
    result
}

/// Puts `count` generated readings of `mix` into a stream: [`put_readings`].
pub async fn generate(
    endpoint: Option<String>,
    stream: &str,
    count: usize,
    rate: Option<f64>,
    mix: &Mix,
    aggregate: Option<usize>,
) -> anyhow::Result<()> {
    let readings = generate::generate(mix, count);
    put_readings(endpoint, stream, readings, rate, aggregate).await
}

/// Puts readings into a stream, `aggregate` readings at most per Kinesis record when given
/// (KPL aggregation). With an endpoint (or `AWS_ENDPOINT_URL`) it talks to that emulator with
/// dummy credentials; without, to the deployed stream in AWS with the standard credential
/// chain, like the AWS CLI. `rate` is in readings per second.
pub async fn put_readings(
    endpoint: Option<String>,
    stream: &str,
    readings: Vec<OutgoingRecord>,
    rate: Option<f64>,
    aggregate: Option<usize>,
) -> anyhow::Result<()> {
    let endpoint = endpoint.or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    let sdk = match &endpoint {
        Some(endpoint) => aws::local_sdk_config(endpoint).await,
        None => aws::sdk_config(None).await,
    };
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let count = readings.len();
    let records = match aggregate {
        Some(per_record) => generate::aggregate(&readings, per_record),
        None => readings,
    };
    // put_records paces Kinesis records: the same readings per second in fewer records.
    let record_rate = rate.map(|r| r * records.len() as f64 / count.max(1) as f64);
    let bar = indicatif::ProgressBar::new(records.len() as u64);
    let placements = generate::put_records(
        &kinesis,
        stream,
        &records,
        record_rate,
        &bar,
        &AtomicUsize::new(0),
    )
    .await?;
    bar.finish();
    let target = endpoint.unwrap_or_else(|| "AWS".to_string());
    match aggregate {
        Some(_) => eprintln!(
            "put {count} readings in {} KPL aggregated records into {stream} at {target}",
            placements.len()
        ),
        None => eprintln!(
            "put {} readings into {stream} at {target}",
            placements.len()
        ),
    }
    Ok(())
}

/// Writes readings to `path` as the JSON Lines `local --input` reads, `aggregate` readings at
/// most per Kinesis record when given; `-` is stdout.
///
/// # Errors
/// The file cannot be written.
pub fn write_records(
    path: &Path,
    readings: Vec<OutgoingRecord>,
    aggregate: Option<usize>,
) -> anyhow::Result<()> {
    let count = readings.len();
    let records = match aggregate {
        Some(per_record) => generate::aggregate(&readings, per_record),
        None => readings,
    };
    if path == Path::new("-") {
        let mut stdout = std::io::stdout().lock();
        generate::write_input(&records, &mut stdout).context("writing to stdout")?;
        return Ok(());
    }
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    generate::write_input(&records, &mut file)
        .and_then(|()| Ok(std::io::Write::flush(&mut file)?))
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "wrote {count} readings in {} records to {} (reactor-monitor local --input {})",
        records.len(),
        path.display(),
        path.display()
    );
    Ok(())
}

/// Runs the handler once on an event file. The configuration comes from the environment
/// when `TABLE_NAME` is set, else from the local resources (created if missing).
pub async fn invoke(endpoint: Option<String>, event: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(event).with_context(|| format!("reading {}", event.display()))?;
    let payload: KinesisBatch = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a Kinesis event as Lambda sends it",
            event.display()
        )
    })?;
    with_endpoint(endpoint, async |endpoint| {
        let sdk = aws::local_sdk_config(endpoint).await;
        let config = if std::env::var(env::TABLE_NAME).is_ok() {
            Config::from_env()?
        } else {
            resources::create(&sdk, &ResourceNames::default(), 1)
                .await?
                .config()
        };
        // Spans go where the standard OTEL_EXPORTER_OTLP_ENDPOINT says, when it is set.
        let provider = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Ok(_) => Some(reactor_monitor::telemetry::traces::otlp_provider(None)?),
            Err(_) => None,
        };
        let function = AwsFunction::from_config(
            &config,
            &sdk,
            provider.clone(),
            MetricsSink::Collect(Default::default()),
        );
        let mut context = lambda_runtime::Context::default();
        context.request_id = "local-invoke".into();
        context.deadline =
            (chrono::Utc::now() + chrono::Duration::seconds(60)).timestamp_millis() as u64;
        let response = function.handle(LambdaEvent::new(payload, context)).await;
        // The metrics the deployed function would write, on stderr beside its logs: stdout
        // carries the response alone.
        for line in function.telemetry.take_collected_metrics() {
            eprintln!("{line}");
        }
        if let Some(provider) = provider {
            crate::run::shut_down_tracing(provider).await?;
        }
        let response = response?;
        Ok(serde_json::to_string(&response)?)
    })
    .await
}

pub fn human_report(report: &LocalReport) -> String {
    let mut out = String::new();
    out.push_str(&format!("endpoint        {}\n", report.endpoint));
    out.push_str(&format!(
        "produced        {}  (stored {}, alerted {} warning + {} emergency, dead-lettered {}, retried {}, exhausted {})\n",
        report.produced, report.stored, report.alerted.warning, report.alerted.emergency, report.dead_lettered, report.retried, report.exhausted
    ));
    if report.kinesis_records != report.produced {
        out.push_str(&format!(
            "put as          {} Kinesis records (KPL aggregated)\n",
            report.kinesis_records
        ));
    }
    out.push_str(&format!(
        "read back       {} items, {} alerts delivered to the alerts queue, {} dead letters\n",
        report.verified.items, report.verified.alerts_delivered, report.verified.dead_letters
    ));
    out.push_str(&report.on_call.summary());
    out.push_str(&format!(
        "throughput      {:.0} readings/s over {:.2} s, {} invocations (p50 {:.1} ms, p99 {:.1} ms), {:.1} AWS requests per 1,000 readings\n\n",
        report.readings_per_second, report.process_seconds, report.invocations, report.invocation_p50_ms, report.invocation_p99_ms, report.aws_requests_per_1000_readings
    ));
    out.push_str(&format!(
        "unique flows, from the {} spans received over OTLP (record spans per flow type):\n",
        report.spans_received
    ));
    out.push_str(&crate::report::flows_table(&report.trace_flows));
    for row in report.trace_flows.iter().filter(|r| r.count > 0) {
        out.push_str(&format!(
            "  {:<12} {} → {}\n",
            row.flow_type.as_str(),
            row.entry_point,
            row.resources.join(", ")
        ));
    }
    out.push_str(&format!("\n{}\n", report.verdict));
    out
}

//! BENCHMARKS.md, "Collector layers": for each layer's real collector with its shipped
/// configuration, the start time (spawn to its OTLP port accepting), its RSS after start and
/// after the invocations, and per invocation the function's flush (one 100-record batch, every
/// record traced: 321 spans) until the collector answered, and until every span reached the
/// receiver behind it. Run with
///   cargo run --release -p reactor-monitor-local --example collector_costs
#[tokio::main]
async fn main() {
    use opentelemetry::trace::{TraceContextExt, Tracer};
    use reactor_monitor::telemetry::traces::{self, CallTargets, TracePlan};
    use reactor_monitor_local::collector::{self, LocalCollector};
    use reactor_monitor_local::otlp::OtlpReceiver;
    use reactor_monitor_local::testing::{batch, memory_pipeline, payload};
    use std::time::{Duration, Instant};

    const STARTS: usize = 5;
    const INVOCATIONS: usize = 30;
    let percentile = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    let payloads: Vec<Vec<u8>> = (0..100).map(|i| payload("r1", 100.0 + i as f64)).collect();
    let report = memory_pipeline().process(batch(payloads), None).await;

    println!(
        "| configuration | start p50 ms | RSS after start MiB | RSS after {INVOCATIONS} invocations MiB | flush p50 / p99 ms | all spans at the receiver p50 / p99 ms |"
    );
    for file in ["collector.yaml", "collector-community.yaml"] {
        let path = reactor_monitor_local::project_root()
            .join("otel-collector")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let layer = collector::Layer::of_config(&text).unwrap();
        let binary = collector::binary(layer).unwrap();
        let receiver = OtlpReceiver::start_forwarding(None).await.unwrap();

        let mut starts = Vec::new();
        let mut running = None;
        for _ in 0..STARTS {
            if let Some(previous) = running.take() {
                let _: Vec<String> = LocalCollector::stop(previous).await;
            }
            let port = reactor_monitor_local::process::free_port().unwrap();
            let listen = format!("127.0.0.1:{port}");
            let local = collector::local_config(&text, &listen, &receiver.endpoint).unwrap();
            let started = LocalCollector::start_binary(&binary, local, &listen)
                .await
                .unwrap();
            starts.push(started.start_time.as_secs_f64() * 1e3);
            running = Some(started);
        }
        let running = running.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_start = running.rss_kib().unwrap() as f64 / 1024.0;

        let provider = traces::otlp_provider(Some(&running.endpoint)).unwrap();
        let tracer = traces::tracer(&provider);
        let (mut flushes, mut delivered) = (Vec::new(), Vec::new());
        for _ in 0..INVOCATIONS {
            let before = receiver.total_received();
            let invocation = opentelemetry::Context::new().with_span(tracer.start("invocation"));
            let spans = 1 + traces::emit_batch(
                &tracer,
                &invocation,
                &report,
                &TracePlan {
                    store_only_ratio: 1.0,
                    max_records_per_trace: 1000,
                },
                &CallTargets::default(),
            );
            invocation.span().end();
            let provider = provider.clone();
            let started = Instant::now();
            tokio::task::spawn_blocking(move || provider.force_flush().unwrap())
                .await
                .unwrap();
            flushes.push(started.elapsed().as_secs_f64() * 1e3);
            while receiver.total_received() < before + spans {
                assert!(started.elapsed() < Duration::from_secs(10), "spans lost");
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            delivered.push(started.elapsed().as_secs_f64() * 1e3);
        }
        let rss_after = running.rss_kib().unwrap() as f64 / 1024.0;
        println!(
            "| {file} ({}) | {:.0} | {rss_start:.1} | {rss_after:.1} | {:.1} / {:.1} | {:.1} / {:.1} |",
            layer.name(),
            percentile(&mut starts, 0.5),
            percentile(&mut flushes, 0.5),
            percentile(&mut flushes, 0.99),
            percentile(&mut delivered, 0.5),
            percentile(&mut delivered, 0.99),
        );
        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .unwrap()
            .ok();
        let _: Vec<String> = running.stop().await;
    }
}

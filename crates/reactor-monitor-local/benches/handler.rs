//! The handler over in-memory ports: a batch of 1,000 mixed records, untraced and with every
//! record traced and exported over OTLP/HTTP to a receiver on 127.0.0.1: once to a receiver
//! that reads and discards each request (the handler's own cost: spans, protobuf encoding,
//! HTTP), once to the local view's receiver (`OtlpReceiver`, which also decodes every span in
//! this process, as `reactor-monitor local` does). After the timed runs, the process CPU time
//! per record of the discarding variant is printed: it is the figure the ≤ 20 µs target is
//! about, wall time on 2 cores can hide or add work done beside the handler.
//!
//! cargo bench --bench handler

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::trace::{TraceContextExt, Tracer};
use reactor_monitor::adapters::memory::{MemoryAlerts, MemoryDeadLetters, MemoryStore};
use reactor_monitor::domain::SequenceNumber;
use reactor_monitor::pipeline::{InboundRecord, Pipeline};
use reactor_monitor::ports::Origin;
use reactor_monitor::telemetry::traces::{self, CallTargets, TracePlan};
use reactor_monitor_local::generate::{Mix, generate};
use reactor_monitor_local::otlp::OtlpReceiver;

const BATCH: usize = 1_000;

fn records() -> Vec<InboundRecord> {
    generate(&Mix::default(), BATCH)
        .into_iter()
        .enumerate()
        .map(|(i, r)| InboundRecord {
            origin: Origin {
                shard_id: "shardId-000000000000".into(),
                sequence_number: SequenceNumber::new(format!("{}", 1_000_000 + i)),
                partition_key: r.partition_key,
                arrival: Utc.timestamp_opt(1_780_000_000, 0).unwrap(),
            },
            data: r.data,
        })
        .collect()
}

/// An OTLP/HTTP endpoint on its own thread that reads every request whole, counts it and
/// answers with an empty (successful) export response.
struct DiscardingReceiver {
    endpoint: String,
    requests: Arc<AtomicUsize>,
}

impl DiscardingReceiver {
    fn start() -> Self {
        use http_body_util::{BodyExt, Full};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((stream, _)) = listener.accept().await {
                    let counted = counted.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(
                            move |req: hyper::Request<hyper::body::Incoming>| {
                                let counted = counted.clone();
                                async move {
                                    let body = req.into_body().collect().await?.to_bytes();
                                    if !body.is_empty() {
                                        counted.fetch_add(1, Ordering::Relaxed);
                                    }
                                    Ok::<_, hyper::Error>(hyper::Response::new(Full::new(
                                        hyper::body::Bytes::new(),
                                    )))
                                }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        Self { endpoint, requests }
    }
}

/// CPU time of the whole process so far (every thread).
fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to write into.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn pipeline() -> Pipeline<MemoryStore, MemoryStore, MemoryAlerts, MemoryDeadLetters> {
    reactor_monitor::adapters::memory::pipeline(16)
}

fn handler(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let input = records();
    let discarding = DiscardingReceiver::start();
    let view = runtime
        .block_on(OtlpReceiver::start_bounded(10_000))
        .unwrap();
    let plan = TracePlan {
        store_only_ratio: 1.0,
        max_records_per_trace: 150,
    };
    let targets = CallTargets::default();
    let traced_batch = |provider: &opentelemetry_sdk::trace::SdkTracerProvider,
                        records: Vec<InboundRecord>| {
        let tracer = traces::tracer(provider);
        let report = runtime.block_on(pipeline().process(records, None));
        let invocation = opentelemetry::Context::new().with_span(tracer.start("invocation"));
        black_box(traces::emit_batch(
            &tracer,
            &invocation,
            &report,
            &plan,
            &targets,
        ));
        invocation.span().end();
        provider.force_flush().unwrap();
        report
    };
    let to_discarding = traces::otlp_provider(Some(&discarding.endpoint)).unwrap();
    let to_view = traces::otlp_provider(Some(&view.endpoint)).unwrap();

    let mut group = c.benchmark_group("handler, 1,000 mixed records");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("untraced", |b| {
        b.iter_batched(
            || (pipeline(), input.clone()),
            |(p, records)| runtime.block_on(p.process(records, None)),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("every record traced, OTLP to a discarding receiver", |b| {
        b.iter_batched(
            || input.clone(),
            |records| traced_batch(&to_discarding, records),
            BatchSize::LargeInput,
        )
    });
    group.bench_function(
        "every record traced, OTLP to the local view's receiver",
        |b| {
            b.iter_batched(
                || input.clone(),
                |records| traced_batch(&to_view, records),
                BatchSize::LargeInput,
            )
        },
    );
    group.finish();
    assert!(
        discarding.requests.load(Ordering::Relaxed) > 0 && view.total_received() > 0,
        "no span reached a receiver"
    );

    // Process CPU time per record, untraced and traced to the discarding receiver.
    const BATCHES: usize = 20;
    let cpu_per_record = |traced: bool| {
        let batches: Vec<_> = (0..BATCHES).map(|_| input.clone()).collect();
        let before = process_cpu_time();
        for records in batches {
            if traced {
                black_box(traced_batch(&to_discarding, records));
            } else {
                black_box(runtime.block_on(pipeline().process(records, None)));
            }
        }
        (process_cpu_time() - before).as_secs_f64() * 1e6 / (BATCHES * BATCH) as f64
    };
    let untraced = cpu_per_record(false);
    let traced = cpu_per_record(true);
    println!(
        "process CPU per record over {BATCHES} batches: untraced {untraced:.2} µs, \
         every record traced to the discarding receiver {traced:.2} µs ({:.1} × untraced)",
        traced / untraced
    );
    let _ = to_discarding.shutdown();
    let _ = to_view.shutdown();
}

criterion_group!(benches, handler);
criterion_main!(benches);

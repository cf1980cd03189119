//! The handler over in-memory ports: a batch of 1,000 mixed records, untraced and with every
//! record traced and exported over OTLP to a receiver on 127.0.0.1.
//!
//! cargo bench --bench handler

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::trace::{TraceContextExt, Tracer};
use reactor_monitor::adapters::memory::{MemoryAlerts, MemoryDeadLetters, MemoryStore};
use reactor_monitor::domain::SequenceNumber;
use reactor_monitor::local::generate::{Mix, generate};
use reactor_monitor::local::otlp::OtlpReceiver;
use reactor_monitor::pipeline::{InboundRecord, Pipeline};
use reactor_monitor::ports::Origin;
use reactor_monitor::telemetry::traces::{self, CallTargets, TracePlan};

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
    let receiver = runtime.block_on(OtlpReceiver::start()).unwrap();
    let provider = traces::otlp_provider(Some(&receiver.endpoint)).unwrap();
    let tracer = traces::tracer(&provider);
    let plan = TracePlan {
        store_only_ratio: 1.0,
        max_records_per_trace: 150,
    };
    let targets = CallTargets::default();

    let mut group = c.benchmark_group("handler, 1,000 mixed records");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("untraced", |b| {
        b.iter_batched(
            || (pipeline(), input.clone()),
            |(p, records)| runtime.block_on(p.process(records, None)),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("every record traced, exported over OTLP", |b| {
        b.iter_batched(
            || (pipeline(), input.clone()),
            |(p, records)| {
                let report = runtime.block_on(p.process(records, None));
                let invocation =
                    opentelemetry::Context::new().with_span(tracer.start("invocation"));
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
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
    let _ = provider.shutdown();
}

criterion_group!(benches, handler);
criterion_main!(benches);

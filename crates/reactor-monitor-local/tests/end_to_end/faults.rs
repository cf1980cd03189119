//! The local stack under injected faults: throttling, 5xx, dropped connections and latency
//! between the handler and the emulator. Nothing is lost while retries can absorb the
//! faults; what they cannot absorb lands in the on-failure destination, and is counted.

use reactor_monitor_local::testing as support;

use std::time::Duration;

use reactor_monitor::pipeline::Outcome;
use reactor_monitor::{aws, lambda};
use reactor_monitor_local::emulator::Emulator;
use reactor_monitor_local::faults::{FaultProxy, FaultSpec, Service};
use reactor_monitor_local::generate::Mix;
use reactor_monitor_local::run::{self, LocalOptions, LocalReport};
use reactor_monitor_local::verify;
use support::{emulator_with_resources, kinesis_event, lambda_event, payload};

/// The SDK's retry quota is shared by every client of a process: local runs take turns,
/// so that one run's faults do not drain another's quota.
static ONE_RUN_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn summary(report: &LocalReport, spec: &FaultSpec) -> String {
    format!(
        "produced {} stored {} dead-lettered {} alerted {:?} retried {} exhausted {} ({} batches) \
         lost {} missing alerts {} duplicate alerts {} in {:.1} s; {}",
        report.produced,
        report.verified.items,
        report.verified.dead_letters,
        report.alerted,
        report.retried,
        report.exhausted,
        report.verified.exhausted_batches,
        report.lost,
        report.missing_alerts,
        report.verified.duplicate_alerts,
        report.process_seconds,
        spec.injected()
    )
}

#[tokio::test]
async fn without_faults_the_proxy_forwards_every_request_unchanged() {
    let (emulator, sdk, resources) = emulator_with_resources(1).await;
    let spec: FaultSpec = "rate=0".parse().unwrap();
    let proxy = FaultProxy::start(emulator.endpoint(), &spec).await.unwrap();
    let proxied = aws::local_sdk_config(proxy.endpoint()).await;
    let pipeline = aws::pipeline(&proxied, &resources.config());
    let mut one_mib = b"\x00not a reading".to_vec();
    one_mib.resize(1024 * 1024, 0xA5);
    let payloads = vec![payload("r1", 500.0), payload("r2", 900.0), one_mib.clone()];

    let (response, report) = lambda::handle(&pipeline, lambda_event(kinesis_event(&payloads, 1)))
        .await
        .unwrap();

    assert!(response.batch_item_failures.is_empty());
    assert!(matches!(
        report.records[1].outcome,
        Outcome::StoredAndAlerted { .. }
    ));
    let kept =
        verify::kept_dead_letters(&aws::s3_client(&sdk), &resources.names.dead_letter_bucket)
            .await
            .unwrap();
    let origin = &report.records[2].origin;
    let letter = &kept[&(origin.shard_id.clone(), origin.sequence_number.clone())];
    assert!(letter.payload == one_mib, "the 1 MiB dead letter differs");
    let injected = proxy.injected();
    let total = injected.total();
    assert_eq!(total.injected(), 0, "{injected}");
    assert_eq!(total.requests, total.forwarded, "{injected}");
    for service in [Service::DynamoDb, Service::Sns, Service::S3] {
        assert!(injected.by_service.contains_key(&service), "{injected}");
    }
}

#[tokio::test]
async fn a_local_run_with_five_percent_injected_faults_loses_and_duplicates_nothing() {
    let _turn = ONE_RUN_AT_A_TIME.lock().await;
    let emulator = Emulator::start().await.unwrap();
    let spec: FaultSpec = "rate=0.05,latency-ms=1,seed=1".parse().unwrap();
    let options = LocalOptions {
        endpoint: Some(emulator.endpoint().to_string()),
        readings: 3_000,
        batch_size: 100,
        shards: 2,
        batching_window: Duration::from_millis(100),
        faults: Some(spec.clone()),
        ..LocalOptions::default()
    };

    let report = run::run(options).await.unwrap();

    let summary = summary(&report, &spec);
    eprintln!("{summary}");
    assert_eq!(report.lost, 0, "{summary}");
    assert_eq!(report.missing_alerts, 0, "{summary}");
    assert_eq!(report.verified.duplicate_alerts, 0, "{summary}");
    assert_eq!(report.verified.exhausted_batches, 0, "{summary}");
    assert!(report.ok(), "{}", report.verdict);
    assert_eq!(
        report.verified.items + report.verified.dead_letters,
        report.produced
    );
    let injected = spec.injected().total();
    assert!(injected.injected() > 0, "no fault was injected: {summary}");
    assert_eq!(injected.upstream_errors, 0, "{summary}");
}

#[tokio::test]
async fn faults_beyond_the_retry_budget_send_batches_to_the_on_failure_destination() {
    let _turn = ONE_RUN_AT_A_TIME.lock().await;
    let emulator = Emulator::start().await.unwrap();
    // DynamoDB and S3 throttle 7 requests in 10: a third of the calls still fail after the
    // SDK's 3 attempts. One record per batch and no retries by the mapping. A record can land
    // and still have its batch given up (its reading stored, then its reactor's new episode
    // state not written): the verdict counts each record once.
    let spec: FaultSpec = "dynamodb=0.7,s3=0.7,kinds=throttle,seed=2".parse().unwrap();
    let options = LocalOptions {
        endpoint: Some(emulator.endpoint().to_string()),
        readings: 24,
        batch_size: 1,
        shards: 8,
        batching_window: Duration::from_millis(10),
        maximum_retry_attempts: 0,
        mix: Mix {
            warning_share: 0.0,
            emergency_share: 0.0,
            corrupt_share: 0.5,
            reactors: 64,
            ..Mix::default()
        },
        faults: Some(spec.clone()),
        ..LocalOptions::default()
    };

    let report = run::run(options).await.unwrap();

    let summary = summary(&report, &spec);
    eprintln!("{summary}");
    assert!(report.verified.exhausted_batches > 0, "{summary}");
    assert_eq!(
        report.verified.exhausted_batches, report.exhausted,
        "{summary}"
    );
    assert!(report.lost > 0, "{summary}");
    assert!(!report.ok(), "the CLI exits non-zero on this run");
    // Every reading is stored, dead-lettered, or kept by the on-failure destination alone.
    assert_eq!(
        report.produced,
        report.verified.items + report.verified.dead_letters + report.verified.exhausted_only,
        "{summary}"
    );
    assert_eq!(
        report.lost, report.verified.exhausted_only as i64,
        "{summary}"
    );
    assert!(
        report.verified.exhausted_only <= report.exhausted,
        "{summary}"
    );
    assert!(
        report.verified.items > 0 && report.verified.dead_letters > 0,
        "{summary}"
    );
    let injected = spec.injected().total();
    assert!(injected.throttled > 0, "{summary}");
}

//! Alert episodes against the emulator: the on-call scenario through the real DynamoDB and SNS
//! adapters, read back from the queue subscribed to the on-call topic.

use std::collections::BTreeMap;

use reactor_monitor::domain::episode::EpisodeAction;
use reactor_monitor::pipeline::InboundRecord;
use reactor_monitor_local::testing::{self as support, episode_scenario as scenario};
use reactor_monitor_local::verify;

async fn deliver(pipeline: &reactor_monitor::aws::AwsPipeline, mut records: Vec<InboundRecord>) {
    for _ in 0..10 {
        let report = pipeline.process(records.clone(), None).await;
        let Some(lowest) = report.failed_sequence_numbers().first().cloned() else {
            return;
        };
        records.retain(|r| r.origin.sequence_number >= lowest);
    }
    panic!("no progress after 10 deliveries");
}

#[tokio::test]
async fn the_on_call_queue_gets_one_message_per_transition_even_when_every_batch_is_replayed() {
    let (_emulator, sdk, resources) = support::emulator_with_resources(1).await;
    let config = resources.config();
    let pipeline = reactor_monitor::aws::pipeline(&sdk, &config);
    let policy = config.episodes.as_ref().unwrap().policy;
    let records = support::batch(scenario::heard());

    for chunk in records.chunks(100) {
        deliver(&pipeline, chunk.to_vec()).await;
        deliver(&pipeline, chunk.to_vec()).await;
    }
    for _ in 0..2 {
        reactor_monitor::silence::check(
            &pipeline.ledger,
            &pipeline.publisher,
            &policy,
            scenario::at(scenario::SILENCE_CHECK_SECOND),
        )
        .await
        .unwrap();
    }
    let back = support::record(
        1_000_000,
        scenario::payload(scenario::EPISODE_RETURN_SECOND),
    );
    deliver(&pipeline, vec![back.clone()]).await;
    deliver(&pipeline, vec![back]).await;

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let bodies = verify::drain(&sqs, &resources.on_call_queue_url)
        .await
        .unwrap();
    let mut got: Vec<(String, String, serde_json::Value)> = bodies
        .iter()
        .map(|body| {
            let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
            let message: serde_json::Value =
                serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
            (
                message["last_reading_at"].as_str().unwrap().to_owned(),
                message["action"].as_str().unwrap().to_owned(),
                message,
            )
        })
        .collect();
    got.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut expected: Vec<(String, String)> = scenario::EXPECTED
        .iter()
        .map(|&(action, second)| {
            let at = scenario::at(second).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            (at, action.as_str().to_owned())
        })
        .collect();
    expected.sort();
    let got_keys: Vec<(String, String)> =
        got.iter().map(|(a, b, _)| (a.clone(), b.clone())).collect();
    assert_eq!(got_keys, expected);

    let mut one_of_each: BTreeMap<String, &serde_json::Value> = BTreeMap::new();
    for (_, action, message) in &got {
        one_of_each.entry(action.clone()).or_insert(message);
        assert_eq!(message["reactor"], scenario::REACTOR);
        assert!(
            message["episode_id"]
                .as_str()
                .unwrap()
                .starts_with("reactor-7/")
        );
    }
    assert_eq!(
        one_of_each.len(),
        EpisodeAction::ALL.len() - 1,
        "every kind but suppressed"
    );
    for message in one_of_each.values() {
        println!("{message}");
    }
}

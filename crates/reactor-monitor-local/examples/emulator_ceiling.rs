//! The emulator's own ceiling for writing readings: a tight SDK loop writing the same items
//! the handler writes (the generated mix, valid readings only, as `DynamoDbStore::reading_item`
//! builds them), once with BatchWriteItem (25 per call) and once with PutItem, at a given
//! concurrency, into a fresh on-demand table. Prints items/s per operation.
//!
//! cargo run --release --example emulator_ceiling -- --endpoint http://127.0.0.1:PORT \
//!     --readings 10000 --concurrency 16 [--put-limit 2000] [--json]
//!
//! `--readings` is the number of generated readings (as `reactor-monitor local --readings`);
//! the corrupted ones are skipped, so fewer items are written. `--put-limit` caps the PutItem
//! pass (it is ~15× slower on moto); its rate is measured over the items it wrote.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
use chrono::Utc;
use clap::Parser;
use reactor_monitor::adapters::dynamodb::{DynamoDbStore, MAX_BATCH_WRITE_ITEMS, attr};
use reactor_monitor::aws::local_sdk_config;
use reactor_monitor::domain::{Reading, SequenceNumber};
use reactor_monitor::ports::{Located, Origin};
use reactor_monitor_local::generate::{Mix, generate};

#[derive(Parser)]
struct Args {
    /// The emulator, e.g. http://127.0.0.1:5000 (127.0.0.1 only).
    #[arg(long)]
    endpoint: String,
    /// Generated readings (the default mix; corrupted payloads are skipped).
    #[arg(long, default_value_t = 10_000)]
    readings: usize,
    /// Requests in flight (the handler's MAX_IN_FLIGHT_REQUESTS is 16 by default).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// At most this many items in the PutItem pass (0: all).
    #[arg(long, default_value_t = 0)]
    put_limit: usize,
    /// Skip the PutItem pass.
    #[arg(long)]
    no_put: bool,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

type Item = HashMap<String, AttributeValue>;

fn items(readings: usize) -> Vec<Item> {
    let arrival = Utc::now();
    generate(&Mix::default(), readings)
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let reading = Reading::parse(&r.data).ok()?;
            let origin = Origin {
                shard_id: "shardId-000000000000".into(),
                sequence_number: SequenceNumber::new(format!("{}", i + 1)),
                partition_key: r.partition_key,
                arrival,
            };
            Some(DynamoDbStore::reading_item(&Located {
                reading: &reading,
                origin: &origin,
            }))
        })
        .collect()
}

async fn fresh_table(client: &Client, name: &str) -> anyhow::Result<()> {
    let _ = client.delete_table().table_name(name).send().await;
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr::REACTOR)
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr::READING_ID)
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(attr::REACTOR)
                .key_type(KeyType::Hash)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(attr::READING_ID)
                .key_type(KeyType::Range)
                .build()?,
        )
        .send()
        .await?;
    Ok(())
}

/// Runs `jobs` with at most `concurrency` in flight; returns (items written, seconds, requests).
async fn drive<F, Fut>(jobs: Vec<Vec<Item>>, concurrency: usize, f: F) -> (usize, f64, usize)
where
    F: Fn(Vec<Item>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<usize>> + Send,
{
    let queue = Arc::new(std::sync::Mutex::new(jobs.into_iter()));
    let written = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let f = Arc::new(f);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (queue, written, requests, f) =
                (queue.clone(), written.clone(), requests.clone(), f.clone());
            tokio::spawn(async move {
                loop {
                    let job = queue.lock().unwrap().next();
                    let Some(job) = job else { break };
                    let n = job.len();
                    let calls = f(job).await.expect("write failed");
                    requests.fetch_add(calls, Ordering::Relaxed);
                    written.fetch_add(n, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    (
        written.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        requests.load(Ordering::Relaxed),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sdk = local_sdk_config(&args.endpoint).await;
    let client = Client::new(&sdk);
    let all = items(args.readings);

    // BatchWriteItem, 25 per call; UnprocessedItems (never returned by moto) are resent.
    let table = "ceiling-batch-write";
    fresh_table(&client, table).await?;
    let jobs: Vec<Vec<Item>> = all
        .chunks(MAX_BATCH_WRITE_ITEMS)
        .map(|c| c.to_vec())
        .collect();
    let c = client.clone();
    let (bw_items, bw_secs, bw_reqs) = drive(jobs, args.concurrency, move |chunk| {
        let c = c.clone();
        async move {
            let mut pending: Vec<WriteRequest> = chunk
                .into_iter()
                .map(|item| {
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                        .build()
                })
                .collect();
            let mut calls = 0;
            while !pending.is_empty() {
                calls += 1;
                let out = c
                    .batch_write_item()
                    .request_items(table, pending)
                    .send()
                    .await?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(table))
                    .unwrap_or_default();
            }
            Ok(calls)
        }
    })
    .await;

    let mut put = None;
    if !args.no_put {
        let table = "ceiling-put-item";
        fresh_table(&client, table).await?;
        let n = if args.put_limit == 0 {
            all.len()
        } else {
            args.put_limit.min(all.len())
        };
        let jobs: Vec<Vec<Item>> = all[..n].iter().map(|i| vec![i.clone()]).collect();
        let c = client.clone();
        put = Some(
            drive(jobs, args.concurrency, move |mut one| {
                let c = c.clone();
                async move {
                    c.put_item()
                        .table_name(table)
                        .set_item(one.pop())
                        .send()
                        .await?;
                    Ok(1)
                }
            })
            .await,
        );
    }

    let bw_rate = bw_items as f64 / bw_secs;
    let put_rate = put.map(|(n, s, _)| n as f64 / s).unwrap_or(0.0);
    let best = bw_rate.max(put_rate);
    if args.json {
        let put_json = put.map(|(n, s, r)| {
            serde_json::json!({"items": n, "seconds": s, "requests": r, "items_per_second": n as f64 / s})
        });
        println!(
            "{}",
            serde_json::json!({
                "readings": args.readings,
                "items": all.len(),
                "concurrency": args.concurrency,
                "batch_write_item": {"items": bw_items, "seconds": bw_secs, "requests": bw_reqs, "items_per_second": bw_rate},
                "put_item": put_json,
                "ceiling_items_per_second": best,
                "ceiling_operation": if best == bw_rate { "BatchWriteItem" } else { "PutItem" },
            })
        );
    } else {
        println!(
            "{} items ({} readings generated), concurrency {}",
            all.len(),
            args.readings,
            args.concurrency
        );
        println!(
            "BatchWriteItem  {bw_items} items in {bw_secs:.2} s, {bw_reqs} requests: {bw_rate:.0} items/s"
        );
        if let Some((n, s, r)) = put {
            println!("PutItem         {n} items in {s:.2} s, {r} requests: {put_rate:.0} items/s");
        }
        println!("ceiling         {best:.0} items/s");
    }
    Ok(())
}

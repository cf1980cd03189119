//! A soak: readings at a steady rate through `reactor-monitor up` while its memory and the
//! iterator age are sampled. CI runs a short one; `scripts/soak` runs it for minutes.
//! SOAK_SECONDS (default 20) and SOAK_RATE (readings per second, default 100) size it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reactor_monitor_local::generate::Mix;
use reactor_monitor_local::verify;

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The iterator age in a totals line: `… | iterator age shardId-000000000000 455 ms`.
fn iterator_age_ms(line: &str) -> Option<u64> {
    let (_, ages) = line.split_once("iterator age ")?;
    ages.split(", ")
        .filter_map(|a| a.split_whitespace().nth(1)?.parse().ok())
        .max()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_steady_flow_keeps_memory_flat_and_the_iterator_age_low() {
    let seconds = env_number("SOAK_SECONDS", 20.0);
    let rate = env_number("SOAK_RATE", 100.0);
    let mut up = Command::new(env!("CARGO_BIN_EXE_reactor-monitor"))
        .arg("up")
        .env_remove("AWS_ENDPOINT_URL")
        .current_dir(reactor_monitor_local::project_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = up.id();
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = {
        let lines = lines.clone();
        let stdout = up.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("endpoint") {
                    let _ = ready_tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
                lines.lock().unwrap().push(line);
            }
        })
    };
    let endpoint = ready_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("up prints its endpoint");

    let count = (seconds * rate) as usize;
    let producer = tokio::spawn({
        let endpoint = endpoint.clone();
        async move {
            reactor_monitor_local::commands::generate(
                Some(endpoint),
                "indications-stream",
                count,
                Some(rate),
                &Mix::default(),
                None,
            )
            .await
        }
    });
    let started = Instant::now();
    let mut samples: Vec<(f64, u64, Option<u64>)> = Vec::new();
    while !producer.is_finished() || started.elapsed().as_secs_f64() < seconds + 3.0 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let age = lines
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|l| iterator_age_ms(l));
        samples.push((
            started.elapsed().as_secs_f64(),
            rss_kib(pid).unwrap_or(0),
            age,
        ));
        assert!(
            started.elapsed().as_secs_f64() < seconds * 3.0 + 60.0,
            "the soak did not finish"
        );
    }
    producer.await.unwrap().unwrap();
    let kept = settled(&endpoint, count).await;
    unsafe_sigint(pid);
    let status = up.wait().unwrap();
    reader.join().unwrap();

    println!("{:>7} {:>9} {:>14}", "t (s)", "RSS (MiB)", "iterator age");
    for (t, rss, age) in &samples {
        println!(
            "{t:>7.1} {:>9.1} {:>14}",
            *rss as f64 / 1024.0,
            age.map_or("-".into(), |a| format!("{a} ms"))
        );
    }
    assert!(status.success(), "up exits cleanly on Ctrl-C");
    let third = samples.len() / 3;
    let settled_rss = samples[third].1;
    let last_rss = samples.iter().skip(third).map(|s| s.1).max().unwrap();
    assert!(
        last_rss.saturating_sub(settled_rss) < 24 * 1024,
        "memory grew from {settled_rss} KiB to {last_rss} KiB"
    );
    assert_eq!(
        kept, count,
        "every reading is in the table or the dead-letter bucket"
    );
    let late_ages: Vec<u64> = samples.iter().skip(2 * third).filter_map(|s| s.2).collect();
    assert!(!late_ages.is_empty(), "no iterator age was reported");
    assert!(
        late_ages.iter().all(|&a| a < 10_000),
        "the consumer fell behind: {late_ages:?}"
    );
}

/// Readings in the table plus records in the dead-letter bucket (each once), once they reach `count`
/// (or after a bounded wait).
async fn settled(endpoint: &str, count: usize) -> usize {
    let sdk = reactor_monitor::aws::local_sdk_config(endpoint).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let s3 = reactor_monitor::aws::s3_client(&sdk);
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let mut items = 0;
        let mut start = None;
        loop {
            let page = dynamodb
                .scan()
                .table_name("indications-table")
                .select(aws_sdk_dynamodb::types::Select::Count)
                .filter_expression("#k = :r")
                .expression_attribute_names("#k", "kind")
                .expression_attribute_values(
                    ":r",
                    aws_sdk_dynamodb::types::AttributeValue::S("reading".into()),
                )
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .unwrap();
            items += page.count as usize;
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        let letters = verify::kept_dead_letters(&s3, "reactor-monitor-dead-letters")
            .await
            .unwrap()
            .len();
        if items + letters >= count || Instant::now() > until {
            return items + letters;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Ctrl-C, as a terminal sends it.
fn unsafe_sigint(pid: u32) {
    Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
}

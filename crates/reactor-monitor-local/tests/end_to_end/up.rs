//! `reactor-monitor up` driven with the real AWS CLI, as a reader of the tutorial drives it.
//!
//! The CLI is the one `scripts/setup-local` installs from PyPI, AWS CLI v1: it takes
//! `--data` as it is, so the commands run here are the v1 lines that `up` prints; the v2
//! lines (`--cli-binary-format raw-in-base64-out`, base64 `--data`) are checked as text.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use reactor_monitor::adapters::s3::read_object;
use serde_json::Value;

const READING: &str = r#"{"temp":750,"reactor":"reactor-1","date":"2020-03-07T16:29:50+02:00"}"#;
/// Not UTF-8, and not JSON either: dead-lettered as `not_utf8`.
const CORRUPTED: &[u8] = b"\xff\xfe{\"temp\": 750, \"reactor\": \x00 torn";
const STARTUP: Duration = Duration::from_secs(60);
const SETTLE: Duration = Duration::from_secs(30);
const EXIT: Duration = Duration::from_secs(30);

/// A running `reactor-monitor up`; interrupted, then killed, if a test ends before it stops.
struct Up {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Up {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_reactor-monitor"))
            .arg("up")
            .args(args)
            .env_remove("AWS_ENDPOINT_URL")
            .current_dir(reactor_monitor_local::project_root())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("reactor-monitor up starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (already printed or still to come) that `wanted` accepts.
    fn wait_for_line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        if let Some(line) = self.seen.iter().find(|l| wanted(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + STARTUP.max(SETTLE);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "up never printed {what}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGINT could not be sent");
    }

    /// Waits for the exit, collecting what it prints on the way out.
    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
                    self.seen.push(line);
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn endpoint(&mut self) -> String {
        let line = self.wait_for_line("its endpoint", |l| l.starts_with("endpoint "));
        line.split_whitespace()
            .nth(1)
            .expect("endpoint URL")
            .to_string()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.interrupt();
            if self.wait_exit(Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

fn venv_bin() -> PathBuf {
    let bin = reactor_monitor_local::project_root().join(".venv/bin");
    assert!(
        bin.join("aws").is_file(),
        "the AWS CLI is not in .venv: run scripts/setup-local (it installs the awscli pinned in \
         requirements-local.txt)"
    );
    bin
}

/// Runs a command line as a reader pastes it into a shell, with `aws` from `.venv`, dummy
/// credentials, and nothing from the user's AWS configuration. Returns its stdout.
fn shell(line: &str, dir: &Path) -> String {
    let path = format!(
        "{}:{}",
        venv_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args(["-c", line])
        .current_dir(dir)
        .env("PATH", path)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_CONFIG_FILE", dir.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "{line}\nfailed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Repeats `attempt` until it gives a value, for at most `SETTLE`.
fn eventually<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} within {SETTLE:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The printed command line that contains every one of `parts`.
fn printed<'a>(lines: &'a [String], parts: &[&str]) -> &'a str {
    lines
        .iter()
        .find(|l| l.starts_with("aws ") && parts.iter().all(|p| l.contains(p)))
        .unwrap_or_else(|| {
            panic!(
                "no printed command with {parts:?} in:\n{}",
                lines.join("\n")
            )
        })
}

fn port_is_open(endpoint: &str) -> bool {
    let address: SocketAddr = endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("host:port");
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

#[test]
fn the_tutorial_walkthrough_works_with_the_real_aws_cli_and_ctrl_c_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let report = Path::new(env!("CARGO_TARGET_TMPDIR")).join("up/flows.html");
    let _ = std::fs::remove_file(&report);
    let mut up = Up::start(&["--report", report.to_str().unwrap()]);
    let endpoint = up.endpoint();
    up.wait_for_line("that it waits for records", |l| {
        l.starts_with("waiting for records")
    });
    let lines = up.seen.clone();

    // The AWS CLI v2 forms, as printed: raw JSON with --cli-binary-format, and base64.
    let v2_raw = printed(
        &lines,
        &[
            "kinesis put-record --stream-name indications-stream --partition-key 1",
            &format!("--cli-binary-format raw-in-base64-out --data '{READING}'"),
        ],
    );
    assert!(v2_raw.starts_with(&format!(
        "aws --endpoint-url {endpoint} --region us-east-1 "
    )));
    let encoded = base64::engine::general_purpose::STANDARD.encode(READING);
    printed(
        &lines,
        &["kinesis put-record", &format!("--data {encoded}")],
    );

    // Put the reading with the printed AWS CLI v1 line, and a corrupted record.
    let v1 = lines
        .iter()
        .find(|l| {
            l.contains("kinesis put-record")
                && l.ends_with(&format!("--data '{READING}'"))
                && !l.contains("--cli-binary-format")
        })
        .expect("a printed AWS CLI v1 put-record");
    let put = json(&shell(v1, dir.path()));
    assert!(put["SequenceNumber"].is_string(), "{put}");
    std::fs::write(dir.path().join("corrupted.bin"), CORRUPTED).unwrap();
    let put = json(&shell(
        &format!(
            "aws --endpoint-url {endpoint} --region us-east-1 kinesis put-record \
             --stream-name indications-stream --partition-key 1 --data fileb://corrupted.bin"
        ),
        dir.path(),
    ));
    // The batch's only parse error: an object of one line, first = last sequence number.
    let sequence_number = put["SequenceNumber"].as_str().unwrap();
    let key = format!(
        "parse-errors/{}/{sequence_number}-{sequence_number}.jsonl",
        put["ShardId"].as_str().unwrap(),
    );

    // The printed query finds the reading of reactor-1 between 14:00 and 15:00 UTC.
    let query = printed(&lines, &["dynamodb query", "BETWEEN"]);
    let item = eventually("the reading is in the table", || {
        let found = json(&shell(query, dir.path()));
        found["Items"].as_array()?.first().cloned()
    });
    assert_eq!(item["reactor"]["S"], "reactor-1");
    assert_eq!(item["temp_c"]["N"], "750");
    assert_eq!(item["date"]["S"], "2020-03-07T16:29:50+02:00");
    let scan = json(&shell(printed(&lines, &["dynamodb scan"]), dir.path()));
    assert!(
        scan["Items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["kind"]["S"] == "reading" && i["reactor"]["S"] == "reactor-1"),
        "{scan}"
    );

    // The alerts queue receives the warning; the on-call queue the episode it opened.
    let receive = printed(&lines, &["sqs receive-message", "reactor-monitor-alerts"]);
    let notification = eventually("the warning reaches the alerts queue", || {
        let out = shell(receive, dir.path());
        let received = if out.trim().is_empty() {
            Value::Null
        } else {
            json(&out)
        };
        let body = received["Messages"].as_array()?.first()?["Body"].as_str()?;
        Some(json(body))
    });
    assert_eq!(notification["Subject"], "warning");
    assert_eq!(
        notification["MessageAttributes"]["reactor"]["Value"],
        "reactor-1"
    );
    let receive = printed(&lines, &["sqs receive-message", "reactor-monitor-on-call"]);
    let page = eventually("the opened episode reaches the on-call queue", || {
        let out = shell(receive, dir.path());
        let received = if out.trim().is_empty() {
            Value::Null
        } else {
            json(&out)
        };
        let body = received["Messages"].as_array()?.first()?["Body"].as_str()?;
        Some(json(body))
    });
    assert_eq!(page["Subject"], "opened warning");
    assert_eq!(page["MessageAttributes"]["action"]["Value"], "opened");

    // The warning's reading records its alert (the ledger); the printed scan of alerted
    // readings returns it with the message id the alert went out with.
    let alerted = eventually("the warning's reading is written with its alert", || {
        let scan = json(&shell(
            printed(&lines, &["dynamodb scan", "attribute_exists(message_id)"]),
            dir.path(),
        ));
        let items = scan["Items"].as_array()?.clone();
        (!items.is_empty()).then_some(items)
    });
    assert!(
        alerted
            .iter()
            .all(|i| i["kind"]["S"] == "reading" && i["message_id"]["S"].as_str().is_some()),
        "the printed scan returns alerted readings: {alerted:?}"
    );
    let scan = json(&shell(printed(&lines, &["dynamodb scan"]), dir.path()));
    let items = scan["Items"].as_array().unwrap();
    assert!(
        items.len() >= alerted.len() && items.iter().all(|i| i["kind"]["S"] == "reading"),
        "the printed scan returns every reading: {scan}"
    );

    // The corrupted record is in the dead-letter bucket byte for byte, with its reason.
    let listing = printed(&lines, &["s3 ls s3://reactor-monitor-dead-letters/"]);
    eventually("the corrupted record is dead-lettered", || {
        shell(listing, dir.path()).contains(&key).then_some(())
    });
    let object = shell(
        &format!(
            "aws --endpoint-url {endpoint} --region us-east-1 s3 cp \
             s3://reactor-monitor-dead-letters/{key} -"
        ),
        dir.path(),
    );
    let letters = read_object(object.as_bytes()).expect("JSON Lines of dead letters");
    assert_eq!(letters.len(), 1, "{object}");
    assert_eq!(letters[0].payload, CORRUPTED);
    assert_eq!(letters[0].reason, "not_utf8");
    assert_eq!(letters[0].sequence_number.to_string(), sequence_number);
    let head = json(&shell(
        &format!(
            "aws --endpoint-url {endpoint} --region us-east-1 s3api head-object \
             --bucket reactor-monitor-dead-letters --key {key}"
        ),
        dir.path(),
    ));
    assert_eq!(head["Metadata"]["reasons"], "not_utf8=1");
    assert_eq!(head["Metadata"]["count"], "1");
    assert_eq!(head["ContentType"], "application/jsonl");

    // Its log lines said so too.
    up.wait_for_line("the alert", |l| {
        l.starts_with("alert") && l.contains("warning") && l.contains("reactor-1")
    });
    up.wait_for_line("the rejection", |l| {
        l.starts_with("rejected") && l.contains("not_utf8")
    });

    // Ctrl-C: a clean exit, the emulator it started is gone, the report is written.
    up.interrupt();
    let status = up.wait_exit(EXIT).expect("up exits after SIGINT");
    assert!(status.success(), "{status}:\n{}", up.seen.join("\n"));
    assert!(
        up.seen
            .iter()
            .any(|l| l == &format!("emulator at {endpoint} stopped")),
        "{}",
        up.seen.join("\n")
    );
    assert!(!port_is_open(&endpoint), "the emulator still listens");
    let html = std::fs::read_to_string(&report).expect("the report is written");
    assert!(html.contains("store+alert") && html.contains("parse-error"));
}

#[tokio::test(flavor = "multi_thread")]
async fn up_attached_from_latest_skips_older_records_and_leaves_the_emulator_running() {
    let emulator = reactor_monitor_local::emulator::Emulator::start()
        .await
        .expect("the emulator starts (run scripts/setup-local first)");
    let endpoint = emulator.endpoint().to_string();
    let sdk = reactor_monitor::aws::local_sdk_config(&endpoint).await;
    let resources = reactor_monitor_local::resources::create(
        &sdk,
        &reactor_monitor_local::resources::ResourceNames::default(),
        1,
    )
    .await
    .unwrap();
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let put = |reactor: &'static str| {
        kinesis
            .put_record()
            .stream_name(&resources.names.stream)
            .partition_key("1")
            .data(aws_sdk_kinesis::primitives::Blob::new(
                format!(
                    r#"{{"temp":750,"reactor":"{reactor}","date":"2020-03-07T16:29:50+02:00"}}"#
                )
                .into_bytes(),
            ))
            .send()
    };
    put("reactor-before").await.unwrap();

    let mut up = Up::start(&["--endpoint", &endpoint, "--starting-position", "latest"]);
    up.wait_for_line("that it waits for records", |l| {
        l.starts_with("waiting for records")
    });
    put("reactor-after").await.unwrap();
    up.wait_for_line("the new reading's alert", |l| l.contains("reactor-after"));
    up.interrupt();
    let status = up.wait_exit(EXIT).expect("up exits after SIGINT");

    assert!(status.success(), "{status}:\n{}", up.seen.join("\n"));
    assert!(
        !up.seen.iter().any(|l| l.contains("reactor-before")),
        "{}",
        up.seen.join("\n")
    );
    assert!(
        port_is_open(&endpoint),
        "up stopped an emulator it did not start"
    );
    emulator.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn up_lists_open_episodes_and_runs_the_silence_check_on_its_timer() {
    let emulator = reactor_monitor_local::emulator::Emulator::start()
        .await
        .expect("the emulator starts (run scripts/setup-local first)");
    let endpoint = emulator.endpoint().to_string();
    let sdk = reactor_monitor::aws::local_sdk_config(&endpoint).await;
    let resources = reactor_monitor_local::resources::create(
        &sdk,
        &reactor_monitor_local::resources::ResourceNames::default(),
        1,
    )
    .await
    .unwrap();
    let mut up = Up::start(&["--endpoint", &endpoint, "--silence-check-every", "1"]);
    up.wait_for_line("that it waits for records", |l| {
        l.starts_with("waiting for records")
    });
    up.wait_for_line("that the silence check has not run", |l| {
        l == "silence   check every 1 s: not run yet"
    });

    // An emergency dated 2020: an open episode, and silent at the first check that reads it.
    aws_sdk_kinesis::Client::new(&sdk)
        .put_record()
        .stream_name(&resources.names.stream)
        .partition_key("1")
        .data(aws_sdk_kinesis::primitives::Blob::new(
            r#"{"temp":812.5,"reactor":"reactor-e1","date":"2020-03-07T16:29:50+02:00"}"#,
        ))
        .send()
        .await
        .unwrap();

    let open = up.wait_for_line("the open episode", |l| {
        l.starts_with("episode   reactor-e1") && l.contains("emergency")
    });
    assert_eq!(
        open,
        "episode   reactor-e1   emergency  peak   812.5 °C  since 2020-03-07T14:29:50Z  \
         reactor-e1/hot/2020-03-07T14:29:50.000Z"
    );
    let check = up.wait_for_line("a silence check that pages the reactor", |l| {
        l.starts_with("silence   check every 1 s, last at ") && l.contains("(reactor-e1)")
    });
    assert!(
        check.ends_with(
            "1 reactor checked, 1 silent page (reactor-e1); open: 0 warning, 1 emergency, 1 silent"
        ),
        "{check}"
    );
    up.wait_for_line("the silent episode", |l| {
        l.starts_with("episode   reactor-e1   silent")
            && l.contains("reactor-e1/silent/2020-03-07T14:29:50.000Z")
    });
    let later = up.wait_for_line("a later check that finds it silent already", |l| {
        l.starts_with("silence   ") && l.contains("1 reactor checked, none silent")
    });
    assert!(
        later.ends_with("open: 0 warning, 1 emergency, 1 silent"),
        "{later}"
    );

    // The pages are on the on-call queue: the opening, then the silence, once each.
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let bodies = reactor_monitor_local::verify::drain(&sqs, &resources.on_call_queue_url)
        .await
        .unwrap();
    let mut actions: Vec<String> = bodies
        .iter()
        .map(|b| {
            reactor_monitor_local::on_call::Page::parse(b)
                .unwrap()
                .notification
                .action
                .to_string()
        })
        .collect();
    actions.sort();
    assert_eq!(actions, ["opened", "silent"]);

    up.interrupt();
    let status = up.wait_exit(EXIT).expect("up exits after SIGINT");
    assert!(status.success(), "{status}:\n{}", up.seen.join("\n"));
    emulator.stop().await;
}

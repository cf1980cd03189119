//! The HTML report as a browser renders it: Debian's chromium, headless, offline. The
//! screenshot is kept under target/tmp/report/ as a test artefact.

use std::fs::File;
use std::path::{Path, PathBuf};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli;
use serde_json::Value;

const CHROMIUM: &str = "/usr/bin/chromium";
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs a command that must succeed; its stdout.
fn succeeds(command: &mut Command) -> Vec<u8> {
    let output = command.output().unwrap();
    crate::assert_success(&output);
    output.stdout
}

fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless chromium with nothing that reaches the network and a fresh profile; its stdout
/// goes to `stdout`. Fails the test when it does not finish within `BROWSER_TIMEOUT`.
fn chromium(args: &[String], stdout: &Path) {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run scripts/setup-browser (scripts/test runs it)"
    );
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(stdout).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {args:?} failed: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} did not finish within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn edge_records(dom: &str, from: &str, to: &str) -> u64 {
    let marker = format!("data-from=\"{from}\" data-to=\"{to}\" data-records=\"");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no edge {from} → {to}"))
        + marker.len();
    dom[at..].split('"').next().unwrap().parse().unwrap()
}

#[test]
fn the_report_of_a_local_run_renders_its_flows_in_a_headless_browser() {
    let dir = artefacts();
    let (direct, page, run_json) = (
        dir.join("local.html"),
        dir.join("report.html"),
        dir.join("run.json"),
    );
    let stdout = succeeds(
        cli()
            .args(["local", "--readings", "400", "--json", "--report"])
            .arg(&direct),
    );
    std::fs::write(&run_json, &stdout).unwrap();
    let run: Value = serde_json::from_slice(&stdout).unwrap();
    succeeds(
        cli()
            .arg("report")
            .arg(&run_json)
            .arg("--output")
            .arg(&page),
    );
    assert!(direct.is_file());

    let html = std::fs::read_to_string(&page).unwrap();
    for fetches in ["<link", "<script", "src=", "@import"] {
        assert!(!html.contains(fetches), "the page would fetch: {fetches}");
    }
    // Only links within the page (an alert to its trace) and references to its own SVG.
    assert!(html.matches("href=").count() == html.matches("href=\"#").count());
    assert!(html.matches("url(").count() == html.matches("url(#").count());

    let dom_file = dir.join("dom.html");
    chromium(
        &["--dump-dom".into(), format!("file://{}", page.display())],
        &dom_file,
    );
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    for flow in ["store-only", "store+alert", "parse-error"] {
        assert!(
            dom.contains(&format!("<article class=\"trace\" data-flow=\"{flow}\"")),
            "no example trace of {flow}"
        );
        assert!(dom.contains(&format!("<tr data-flow=\"{flow}\"")));
    }
    // Each alert shown leads back to its reading: the traceparent its message carried.
    assert!(dom.contains("<td><code>00-") || dom.contains("\"><code>00-"));
    assert!(
        dom.matches("<svg").count() >= 3 + 4,
        "flow map, bars, charts"
    );
    assert!(
        dom.contains("data-threshold=\"warning\"") && dom.contains("data-threshold=\"emergency\"")
    );
    let count = |key: &str| run[key].as_u64().unwrap();
    assert_eq!(edge_records(&dom, "stream", "function"), count("produced"));
    assert_eq!(edge_records(&dom, "function", "table"), count("stored"));
    assert_eq!(
        edge_records(&dom, "function", "dead-letters"),
        count("dead_lettered")
    );
    assert_eq!(
        edge_records(&dom, "function", "topic"),
        run["alerted"]["warning"].as_u64().unwrap() + run["alerted"]["emergency"].as_u64().unwrap()
    );

    let screenshot = dir.join("report.png");
    let _ = std::fs::remove_file(&screenshot);
    chromium(
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,2000".into(),
            format!("file://{}", page.display()),
        ],
        &dir.join("screenshot.log"),
    );
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    println!("screenshot of the report: {}", screenshot.display());
}

#[test]
fn report_says_how_to_save_a_run_when_the_file_has_no_flows() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("other.json");
    std::fs::write(&input, r#"{"produced": 3}"#).unwrap();

    let output = cli().arg("report").arg(&input).output().unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("reactor-monitor local --json"), "{stderr}");
}

//! The on-call pages of a local run: the episode scenario as `generate --scenario` writes it,
//! run by `local --input`, each transition reported once by the functions and read back once
//! from the on-call queue.

use std::path::Path;

use base64::Engine;
use reactor_monitor::domain::Reading;
use reactor_monitor_local::scenario::episodes;
use serde_json::{Value, json};

use crate::{assert_success, cli};

/// `generate --scenario episodes --output FILE`: the JSON Lines of `local --input`.
fn write_scenario(file: &Path) {
    let output = cli()
        .args(["generate", "--scenario", "episodes", "--output"])
        .arg(file)
        .output()
        .unwrap();
    assert_success(&output);
}

fn counts(pairs: &[(&str, u64)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[test]
fn generate_writes_the_episode_scenario_as_json_lines_for_local_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("episodes.jsonl");

    write_scenario(&file);

    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 200);
    let mut temps = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, ["data", "partitionKey"], "line {i}");
        assert_eq!(line["partitionKey"], "reactor-7");
        let data = base64::engine::general_purpose::STANDARD
            .decode(line["data"].as_str().unwrap())
            .unwrap();
        let reading = Reading::parse(&data).unwrap();
        assert_eq!(reading.reactor, "reactor-7");
        assert_eq!(
            reading.date.to_utc(),
            episodes::at(10 * i as i64),
            "line {i}"
        );
        temps.push(reading.temp_c);
    }
    let at = |second| temps[episodes::index(second)];
    assert_eq!((temps[0], at(110), at(120)), (640.0, 695.0, 700.0));
    assert_eq!((at(1_310), at(1_320), at(1_610)), (750.0, 850.0, 850.0));
    assert_eq!((at(1_620), temps[199]), (600.0, 600.0));

    let stdout = cli()
        .args(["generate", "--scenario", "episodes", "--output", "-"])
        .output()
        .unwrap();
    assert_success(&stdout);
    assert_eq!(String::from_utf8(stdout.stdout).unwrap(), text);
}

#[test]
fn a_local_run_of_the_episode_scenario_reads_back_each_page_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("episodes.jsonl");
    write_scenario(&file);

    let page = dir.path().join("report.html");
    let output = cli()
        .args(["local", "--json", "--input"])
        .arg(&file)
        .arg("--report")
        .arg(&page)
        .output()
        .unwrap();

    assert_success(&output);
    let run: Value = serde_json::from_slice(&output.stdout).unwrap();
    let on_call = &run["on_call"];
    let five = counts(&[
        ("escalated", 1),
        ("opened", 1),
        ("repeated", 1),
        ("resolved", 1),
        ("silent", 1),
    ]);
    assert_eq!(on_call["published"], five, "{on_call}");
    assert_eq!(on_call["delivered"], five, "{on_call}");
    assert_eq!(on_call["suppressed"], episodes::SUPPRESSED);
    assert_eq!(on_call["verified"], true);
    assert_eq!(on_call["missing"], json!([]));
    assert_eq!(on_call["duplicates"], json!([]));
    assert_eq!(on_call["unreported"], 0);
    assert_eq!(on_call["silence_check"]["silent"], json!(["reactor-7"]));
    // The metrics on-call's dashboards read say the same, suppressed included.
    let mut emf = five.clone();
    emf["suppressed"] = json!(episodes::SUPPRESSED);
    assert_eq!(run["metrics"]["episode_actions"], emf);

    // In reading time, each page names the reading the scenario says; the silent page the
    // last reading written (at most a minute before the last one heard).
    let pages = on_call["pages"].as_array().unwrap();
    let got: Vec<(&str, &str)> = pages
        .iter()
        .map(|p| {
            (
                p["action"].as_str().unwrap(),
                p["last_reading_at"].as_str().unwrap(),
            )
        })
        .collect();
    let stamp = |second| episodes::at(second).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let expected: Vec<(&str, String)> = episodes::EXPECTED[..4]
        .iter()
        .map(|&(action, second)| (action.as_str(), stamp(second)))
        .collect();
    for ((action, at), (want, want_at)) in got.iter().zip(&expected) {
        assert_eq!((*action, *at), (*want, want_at.as_str()));
    }
    assert_eq!(got[4].0, "silent");
    let silent_at: chrono::DateTime<chrono::Utc> = got[4].1.parse().unwrap();
    let last_heard = episodes::at(episodes::LAST_HEARD_SECOND);
    assert!(silent_at <= last_heard && last_heard - silent_at < chrono::TimeDelta::minutes(1));
    assert!(
        pages
            .iter()
            .all(|p| p["episode_id"].as_str().unwrap().starts_with("reactor-7/"))
    );
    assert!(
        run["verdict"]
            .as_str()
            .unwrap()
            .contains("5 on-call pages delivered"),
        "{}",
        run["verdict"]
    );

    // The report marks each page on reactor-7's temperature chart, labelled, at its reading.
    let html = std::fs::read_to_string(&page).unwrap();
    for (action, second) in episodes::EXPECTED[..4]
        .iter()
        .map(|&(a, s)| (a.as_str(), s))
    {
        let mark = format!(
            "<g class=\"episode-mark\" data-action=\"{action}\" data-reading-at=\"{}\">",
            stamp(second)
        );
        assert_eq!(html.matches(&mark).count(), 1, "{mark}");
    }
    assert_eq!(
        html.matches("<g class=\"episode-mark\" data-action=\"silent\"")
            .count(),
        1
    );
    assert_eq!(html.matches("<g class=\"episode-mark\"").count(), 5);
    for action in ["opened", "escalated", "repeated", "resolved", "silent"] {
        assert!(
            html.contains(&format!(">{action}</text></g>")),
            "{action} labelled"
        );
    }
    let saved = dir.path().join("run.json");
    std::fs::write(&saved, &output.stdout).unwrap();
    let again = dir.path().join("again.html");
    assert_success(
        &cli()
            .arg("report")
            .arg(&saved)
            .arg("--output")
            .arg(&again)
            .output()
            .unwrap(),
    );
    let redrawn = std::fs::read_to_string(&again).unwrap();
    assert_eq!(redrawn.matches("<g class=\"episode-mark\"").count(), 5);
}

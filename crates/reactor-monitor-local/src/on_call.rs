//! The on-call read-back: the episode notifications the functions reported publishing (the
//! stream function's record reports, the silence check's pages), held against the messages of
//! the queue subscribed to the on-call topic. A notification reported and not on the queue
//! is missing; one `(episode_id, action, last_reading_at)` on the queue twice is a duplicate
//! page; either fails the local run's verdict.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::str::FromStr;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::resources::Resources;
use reactor_monitor::domain::episode::{EpisodeAction, EpisodePolicy, Notification};
use reactor_monitor::pipeline::BatchReport;
use reactor_monitor::ports::{EpisodeStore, OnCallPublisher};
use reactor_monitor::silence::{self, SilenceReport};

/// The actions that are notifications, in the order of an episode's life. `suppressed` is
/// not one: it is counted apart, as the record spans and the metrics count it.
pub const NOTIFYING: [EpisodeAction; 5] = [
    EpisodeAction::Opened,
    EpisodeAction::Escalated,
    EpisodeAction::Repeated,
    EpisodeAction::Resolved,
    EpisodeAction::Silent,
];

/// A notification as the function that published it reported it: the reactor, the action,
/// and the date of the reading it names as last (for `silent`: the last reading written).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PageKey {
    pub reactor: String,
    pub action: EpisodeAction,
    pub last_reading_at: DateTime<Utc>,
}

/// What the functions of a run reported about on-call notifications.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reported {
    /// One per notification published and reported, in the order reported.
    pub pages: Vec<PageKey>,
    /// Hot readings inside an open episode: no notification.
    pub suppressed: usize,
    /// The newest reading date of the run (the readings' clock).
    pub newest_reading: Option<DateTime<Utc>>,
}

impl Reported {
    /// Notes one invocation's records: each record's episode action (the last notification of
    /// its reading, `suppressed`, or none), as the record span and the `EpisodeActions` metric
    /// carry it. Counted per delivery: a record delivered again reports what it did again
    /// (a replay of a reading already applied pages no one).
    pub fn record_batch(&mut self, report: &BatchReport) {
        for record in &report.records {
            let Some(reading) = &record.reading else {
                continue;
            };
            let date = reading.date.to_utc();
            self.newest_reading = self.newest_reading.max(Some(date));
            match record.episode {
                None => {}
                Some(EpisodeAction::Suppressed) => self.suppressed += 1,
                Some(action) => self.pages.push(PageKey {
                    reactor: reading.reactor.clone(),
                    action,
                    last_reading_at: date,
                }),
            }
        }
    }

    /// Notes the `silent` pages a silence check published and recorded.
    pub fn record_silence_check(&mut self, report: &SilenceReport) {
        self.pages.extend(report.notified.iter().map(key_of));
    }

    /// Notifications reported per action, every notifying action present (0 when none).
    pub fn per_action(&self) -> BTreeMap<String, usize> {
        per_action(self.pages.iter().map(|p| p.action))
    }
}

fn key_of(n: &Notification) -> PageKey {
    PageKey {
        reactor: n.reactor.clone(),
        action: n.action,
        last_reading_at: n.last_reading_at,
    }
}

fn per_action(actions: impl Iterator<Item = EpisodeAction>) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> =
        NOTIFYING.iter().map(|a| (a.to_string(), 0)).collect();
    for action in actions {
        *counts.entry(action.to_string()).or_default() += 1;
    }
    counts
}

/// Where the reading that caused a notification sits in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadingPlace {
    pub shard_id: String,
    /// `<sequence number>`, or `<sequence number>:<subsequence>` for a user record of a KPL
    /// aggregate: the record span's `messaging.message.id`.
    pub sequence_number: String,
}

/// One on-call message read back from the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// SNS's `MessageId`: the same for every delivery of one publish.
    pub message_id: String,
    #[serde(flatten)]
    pub notification: Notification,
    /// The reading that caused it; `None` for `silent`.
    pub reading: Option<ReadingPlace>,
}

/// The SNS envelope of a message delivered to an SQS subscription (raw delivery off).
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "MessageId")]
    message_id: String,
    #[serde(rename = "Message")]
    message: String,
}

/// The JSON body the on-call publisher writes (`adapters::on_call::OnCallMessage`).
#[derive(Deserialize)]
struct Body {
    #[serde(flatten)]
    notification: Notification,
    reading: Option<ReadingPlace>,
}

impl Page {
    /// Reads one SQS message body: the SNS envelope, then the on-call JSON it carries.
    ///
    /// # Errors
    /// The body is not an SNS envelope, or its `Message` is not an on-call notification.
    pub fn parse(body: &str) -> anyhow::Result<Self> {
        let envelope: Envelope =
            serde_json::from_str(body).context("not an SNS message envelope")?;
        let message: Body = serde_json::from_str(&envelope.message)
            .context("the SNS message is not an on-call notification")?;
        Ok(Self {
            message_id: envelope.message_id,
            notification: message.notification,
            reading: message.reading,
        })
    }

    fn key(&self) -> PageKey {
        key_of(&self.notification)
    }

    /// What makes two messages the same page: `(episode_id, action, last_reading_at)`.
    fn identity(&self) -> (&str, EpisodeAction, DateTime<Utc>) {
        let n = &self.notification;
        (n.episode_id.as_str(), n.action, n.last_reading_at)
    }
}

/// A page that reached the queue more than once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DuplicatePage {
    pub episode_id: String,
    pub action: EpisodeAction,
    pub last_reading_at: DateTime<Utc>,
    /// Messages with distinct SNS message ids for it (2 or more).
    pub copies: usize,
}

/// One run of the silence check, as a local run or `up` made it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SilenceCheckRun {
    /// The check's clock.
    pub at: DateTime<Utc>,
    /// Reactors whose state it read.
    pub reactors: usize,
    /// Reactors it paged `silent` (published and recorded), `reactor-2` before `reactor-10`.
    pub silent: Vec<String>,
    /// Pages not published or not recorded, each with its reason.
    pub failures: Vec<String>,
    /// Open episodes after the check: `warning`, `emergency`, `silent`.
    pub open: BTreeMap<String, usize>,
}

impl SilenceCheckRun {
    fn of(at: DateTime<Utc>, report: &SilenceReport) -> Self {
        let mut silent: Vec<String> = report.notified.iter().map(|n| n.reactor.clone()).collect();
        silent.sort_by_key(|r| crate::report::natural_key(r));
        Self {
            at,
            reactors: report.reactors,
            silent,
            failures: report.failures.iter().map(|e| e.to_string()).collect(),
            open: report
                .open
                .iter()
                .map(|(severity, n)| (severity.to_string(), *n))
                .collect(),
        }
    }

    /// One line: when it ran, what it read and whom it paged.
    pub fn describe(&self) -> String {
        let mut line = format!(
            "{} reactor{} checked, ",
            self.reactors,
            plural(self.reactors)
        );
        match self.silent.len() {
            0 => line.push_str("none silent"),
            n => {
                let mut named = self.silent[..n.min(NAMED_SILENT)].join(", ");
                if n > NAMED_SILENT {
                    let _ = write!(named, " and {} more", n - NAMED_SILENT);
                }
                let _ = write!(line, "{n} silent page{} ({named})", plural(n));
            }
        }
        if !self.failures.is_empty() {
            let _ = write!(
                line,
                "; {} not published or not recorded: {}",
                self.failures.len(),
                self.failures.join("; ")
            );
        }
        let open: Vec<String> = ["warning", "emergency", "silent"]
            .iter()
            .map(|s| format!("{} {s}", self.open.get(*s).copied().unwrap_or(0)))
            .collect();
        let _ = write!(line, "; open: {}", open.join(", "));
        line
    }
}

/// Reactors a silence check's line names; the rest are counted.
const NAMED_SILENT: usize = 5;

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Runs the scheduled function's check once at `at` on these ports; the run and the pages
/// it published (for [`Reported::record_silence_check`] and the EMF lines).
///
/// # Errors
/// The episode states could not be read.
pub async fn silence_check<L: EpisodeStore, P: OnCallPublisher>(
    store: &L,
    publisher: &P,
    policy: &EpisodePolicy,
    at: DateTime<Utc>,
) -> anyhow::Result<(SilenceCheckRun, SilenceReport)> {
    let report = silence::check(store, publisher, policy, at)
        .await
        .context("the silence check could not read the episode states")?;
    Ok((SilenceCheckRun::of(at, &report), report))
}

/// When `reactor-monitor local` runs the silence check (`--silence-check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SilenceCheckAt {
    /// Once the stream is drained, on the readings' clock: [`SILENCE_CHECK_AFTER`] past the
    /// newest reading of the run, as the scheduled check would first find every reactor of the
    /// run silent once its sensors stopped.
    #[default]
    AfterData,
    /// Not at all.
    Never,
    /// Once the stream is drained, with its clock at this instant.
    At(DateTime<Utc>),
}

/// How far past the newest reading [`SilenceCheckAt::AfterData`] runs the check:
/// `SILENCE_MINUTES`, plus the lag of the stored `last_reading_at` behind the newest reading
/// (`EpisodePolicy::last_reading_resolution`), so that every reactor is found silent.
pub fn silence_check_after(policy: &EpisodePolicy) -> chrono::TimeDelta {
    policy.silent_after + policy.last_reading_resolution()
}

impl SilenceCheckAt {
    /// The check's clock for a run whose newest reading is `newest`; `None`: no check.
    pub fn time(
        self,
        newest: Option<DateTime<Utc>>,
        policy: &EpisodePolicy,
    ) -> Option<DateTime<Utc>> {
        match self {
            Self::AfterData => newest.map(|t| t + silence_check_after(policy)),
            Self::Never => None,
            Self::At(at) => Some(at),
        }
    }
}

impl FromStr for SilenceCheckAt {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "after-data" => Ok(Self::AfterData),
            "never" => Ok(Self::Never),
            _ => DateTime::parse_from_rfc3339(text)
                .map(|t| Self::At(t.to_utc()))
                .map_err(|e| {
                    format!("{text:?}: expected after-data, never or an RFC 3339 instant ({e})")
                }),
        }
    }
}

/// The on-call topic of a run, read back: `on_call` in `local --json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OnCallReadBack {
    /// Notifications the functions reported publishing, per action (`opened`, `escalated`,
    /// `repeated`, `resolved`, `silent`; 0 when none).
    pub published: BTreeMap<String, usize>,
    /// Hot readings inside an open episode: no notification (record spans and metrics only).
    pub suppressed: usize,
    /// Messages on the on-call queue, one per SNS message id, per action.
    pub delivered: BTreeMap<String, usize>,
    /// Reported notifications that are not on the queue.
    pub missing: Vec<PageKey>,
    /// Pages on the queue more than once (distinct SNS message ids).
    pub duplicates: Vec<DuplicatePage>,
    /// Pages on the queue that no report accounts for: published by a delivery whose records
    /// were then retried (its episode state not written), or the first of two notifications
    /// of one reading (a silent episode resolved, then a hot one opened).
    pub unreported: usize,
    /// Queue messages that are not on-call notifications.
    pub unreadable: usize,
    /// The silence check the run made, if any.
    pub silence_check: Option<SilenceCheckRun>,
    /// Nothing missing and nothing duplicated.
    pub verified: bool,
    /// Every page read back (one per SNS message id), in reading time.
    pub pages: Vec<Page>,
}

impl OnCallReadBack {
    /// Holds what was reported against the bodies of the messages the on-call queue held.
    pub fn reconcile(reported: &Reported, bodies: &[String]) -> Self {
        let mut unreadable = 0;
        let mut seen = HashSet::new();
        let mut pages: Vec<Page> = Vec::new();
        for body in bodies {
            match Page::parse(body) {
                Ok(page) if seen.insert(page.message_id.clone()) => pages.push(page),
                Ok(_) => {}
                Err(_) => unreadable += 1,
            }
        }
        pages.sort_by_key(|p| (p.notification.last_reading_at, p.notification.action));

        let mut copies: HashMap<(&str, EpisodeAction, DateTime<Utc>), Vec<&Page>> = HashMap::new();
        let mut distinct: Vec<&Page> = Vec::new();
        for page in &pages {
            let same = copies.entry(page.identity()).or_default();
            if same.is_empty() {
                distinct.push(page);
            }
            same.push(page);
        }
        let mut duplicates: Vec<DuplicatePage> = copies
            .into_iter()
            .filter(|(_, same)| same.len() > 1)
            .map(
                |((episode_id, action, last_reading_at), same)| DuplicatePage {
                    episode_id: episode_id.to_string(),
                    action,
                    last_reading_at,
                    copies: same.len(),
                },
            )
            .collect();
        duplicates.sort_by_key(|d| (d.last_reading_at, d.action));

        let mut on_queue: HashMap<PageKey, usize> = HashMap::new();
        for page in &distinct {
            *on_queue.entry(page.key()).or_default() += 1;
        }
        let mut missing = Vec::new();
        for key in &reported.pages {
            match on_queue.get_mut(key) {
                Some(n) if *n > 0 => *n -= 1,
                _ => missing.push(key.clone()),
            }
        }
        let unreported = on_queue.values().sum();

        Self {
            published: reported.per_action(),
            suppressed: reported.suppressed,
            delivered: per_action(pages.iter().map(|p| p.notification.action)),
            verified: missing.is_empty() && duplicates.is_empty(),
            missing,
            duplicates,
            unreported,
            unreadable,
            silence_check: None,
            pages,
        }
    }

    /// Pages published in all.
    pub fn published_total(&self) -> usize {
        self.published.values().sum()
    }

    /// Messages read back in all.
    pub fn delivered_total(&self) -> usize {
        self.delivered.values().sum()
    }

    /// The human summary's lines.
    pub fn summary(&self) -> String {
        let counts = |map: &BTreeMap<String, usize>| {
            NOTIFYING
                .iter()
                .map(|a| format!("{a} {}", map.get(a.as_str()).copied().unwrap_or(0)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = format!(
            "on call         {} pages published ({}); {} hot readings suppressed (no page)\n",
            self.published_total(),
            counts(&self.published),
            crate::report::thousands(self.suppressed)
        );
        let _ = writeln!(
            out,
            "                {} read back from the on-call queue ({})",
            self.delivered_total(),
            counts(&self.delivered)
        );
        if let Some(check) = &self.silence_check {
            let _ = writeln!(
                out,
                "silence check   at {}: {}",
                check.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                check.describe()
            );
        }
        for key in &self.missing {
            let _ = writeln!(
                out,
                "MISSING page    {} {} at {}",
                key.action,
                key.reactor,
                key.last_reading_at
                    .to_rfc3339_opts(SecondsFormat::AutoSi, true)
            );
        }
        for page in &self.duplicates {
            let _ = writeln!(
                out,
                "DUPLICATE page  {} {} at {}: {} copies",
                page.action,
                page.episode_id,
                page.last_reading_at
                    .to_rfc3339_opts(SecondsFormat::AutoSi, true),
                page.copies
            );
        }
        if self.unreported > 0 {
            let _ = writeln!(
                out,
                "                {} more read back than reported: published by deliveries that \
                 were then retried",
                self.unreported
            );
        }
        out
    }
}

/// Drains the on-call queue (each message once, by SQS message id: `verify::drain`) and holds
/// it against `reported`.
///
/// # Errors
/// The queue could not be read.
pub async fn read_back(
    sdk: &aws_config::SdkConfig,
    resources: &Resources,
    reported: &Reported,
) -> anyhow::Result<OnCallReadBack> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let bodies = crate::verify::drain(&sqs, &resources.on_call_queue_url)
        .await
        .context("reading the on-call queue")?;
    Ok(OnCallReadBack::reconcile(reported, &bodies))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use reactor_monitor::domain::Severity;

    fn at(second: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + chrono::TimeDelta::seconds(second)
    }

    fn notification(action: EpisodeAction, second: i64) -> Notification {
        Notification {
            action,
            episode_id: "reactor-7/hot/2026-11-01T00:00:00.000Z".into(),
            reactor: "reactor-7".into(),
            severity: Severity::Warning,
            peak_c: 750.0,
            last_c: 750.0,
            first_reading_at: at(0),
            last_reading_at: at(second),
            superseded_by: None,
        }
    }

    /// A message as SQS holds it: the SNS envelope around the on-call JSON.
    fn body(message_id: &str, n: &Notification) -> String {
        let message = serde_json::json!({
            "action": n.action, "episode_id": n.episode_id, "reactor": n.reactor,
            "severity": n.severity, "peak_c": n.peak_c, "last_c": n.last_c,
            "first_reading_at": n.first_reading_at, "last_reading_at": n.last_reading_at,
            "reading": {"shard_id": "shardId-000000000000", "sequence_number": "1"},
            "traceparent": null, "trace_note": "…",
        });
        serde_json::json!({
            "Type": "Notification", "MessageId": message_id,
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:reactor-on-call",
            "Subject": format!("{} warning", n.action), "Message": message.to_string(),
        })
        .to_string()
    }

    fn reported(notes: &[Notification], suppressed: usize) -> Reported {
        Reported {
            pages: notes.iter().map(key_of).collect(),
            suppressed,
            newest_reading: None,
        }
    }

    fn episode() -> Vec<Notification> {
        vec![
            notification(EpisodeAction::Opened, 0),
            notification(EpisodeAction::Repeated, 900),
            notification(EpisodeAction::Resolved, 1_300),
        ]
    }

    #[test]
    fn every_reported_page_on_the_queue_once_is_verified_with_its_counts() {
        let notes = episode();
        let bodies: Vec<String> = notes
            .iter()
            .enumerate()
            .map(|(i, n)| body(&format!("m{i}"), n))
            .collect();

        let back = OnCallReadBack::reconcile(&reported(&notes, 42), &bodies);

        assert!(back.verified, "{back:?}");
        let expected: BTreeMap<String, usize> = [
            ("opened", 1),
            ("escalated", 0),
            ("repeated", 1),
            ("resolved", 1),
            ("silent", 0),
        ]
        .into_iter()
        .map(|(a, n)| (a.to_string(), n))
        .collect();
        assert_eq!(back.published, expected);
        assert_eq!(back.delivered, expected);
        assert_eq!(back.suppressed, 42);
        assert!(!back.published.contains_key("suppressed"));
        assert_eq!((back.unreported, back.unreadable), (0, 0));
        assert_eq!(back.pages[0].reading.as_ref().unwrap().sequence_number, "1");
    }

    #[test]
    fn a_reported_page_missing_from_the_queue_fails_the_verification() {
        let notes = episode();
        let bodies = vec![body("m0", &notes[0]), body("m2", &notes[2])];

        let back = OnCallReadBack::reconcile(&reported(&notes, 0), &bodies);

        assert!(!back.verified);
        assert_eq!(back.missing, vec![key_of(&notes[1])]);
        assert!(back.duplicates.is_empty());
        assert!(
            back.summary()
                .contains("MISSING page    repeated reactor-7 at 2026-11-01T00:15:00Z")
        );
    }

    #[test]
    fn one_page_arriving_twice_fails_the_verification() {
        let notes = episode();
        let mut bodies: Vec<String> = notes
            .iter()
            .enumerate()
            .map(|(i, n)| body(&format!("m{i}"), n))
            .collect();
        bodies.push(body("m0-again", &notes[0]));

        let back = OnCallReadBack::reconcile(&reported(&notes, 0), &bodies);

        assert!(!back.verified);
        assert!(back.missing.is_empty());
        assert_eq!(
            back.duplicates,
            vec![DuplicatePage {
                episode_id: notes[0].episode_id.clone(),
                action: EpisodeAction::Opened,
                last_reading_at: at(0),
                copies: 2,
            }]
        );
        assert_eq!(back.delivered["opened"], 2);
        assert_eq!(
            back.unreported, 0,
            "the copy is a duplicate, not another page"
        );
    }

    #[test]
    fn the_same_sns_message_delivered_twice_is_one_page() {
        let notes = episode();
        let mut bodies: Vec<String> = notes
            .iter()
            .enumerate()
            .map(|(i, n)| body(&format!("m{i}"), n))
            .collect();
        bodies.push(bodies[1].clone());

        let back = OnCallReadBack::reconcile(&reported(&notes, 0), &bodies);

        assert!(back.verified, "{back:?}");
        assert_eq!(back.delivered["repeated"], 1);
        assert_eq!(back.pages.len(), 3);
    }

    #[test]
    fn pages_nobody_reported_and_foreign_messages_are_counted_without_failing() {
        let notes = episode();
        let bodies = vec![
            body("m0", &notes[0]),
            body("m1", &notes[1]),
            body("m2", &notes[2]),
            body("extra", &notification(EpisodeAction::Escalated, 500)),
            r#"{"Type":"Notification","MessageId":"x","Message":"not json"}"#.to_string(),
        ];

        let back = OnCallReadBack::reconcile(&reported(&notes, 0), &bodies);

        assert!(back.verified);
        assert_eq!((back.unreported, back.unreadable), (1, 1));
        assert_eq!(back.delivered["escalated"], 1);
        assert_eq!(back.published["escalated"], 0);
    }

    #[test]
    fn a_silence_check_line_names_a_few_reactors_and_counts_the_rest() {
        let run = SilenceCheckRun {
            at: at(0),
            reactors: 9,
            silent: (1..=7).map(|i| format!("reactor-{i}")).collect(),
            failures: Vec::new(),
            open: BTreeMap::from([("warning".to_string(), 2), ("silent".to_string(), 7)]),
        };
        assert_eq!(
            run.describe(),
            "9 reactors checked, 7 silent pages (reactor-1, reactor-2, reactor-3, reactor-4, \
             reactor-5 and 2 more); open: 2 warning, 0 emergency, 7 silent"
        );
    }

    #[test]
    fn the_silence_check_after_the_data_finds_the_newest_reactor_silent() {
        let policy = EpisodePolicy::default();
        let newest = at(1_999);
        let check = SilenceCheckAt::AfterData
            .time(Some(newest), &policy)
            .unwrap();
        // The stored last_reading_at lags the newest reading by less than the resolution.
        let stored = newest - policy.last_reading_resolution() + chrono::TimeDelta::seconds(1);
        assert!(check - stored >= policy.silent_after);
        assert_eq!(check - newest, chrono::TimeDelta::minutes(6));
        assert_eq!(SilenceCheckAt::Never.time(Some(newest), &policy), None);
        assert_eq!(SilenceCheckAt::AfterData.time(None, &policy), None);
        assert_eq!(
            "2026-11-01T01:00:00+01:00".parse::<SilenceCheckAt>(),
            Ok(SilenceCheckAt::At(at(0)))
        );
        assert!("soon".parse::<SilenceCheckAt>().is_err());
    }
}

//! The silence check: every reactor that reported before and has sent nothing for
//! `SILENCE_MINUTES` gets one `silent` page. Run on a schedule (EventBridge Scheduler invokes
//! the `silence-check` binary every minute; `reactor-monitor up` runs it on a timer). Its clock
//! is the check's `now`; everything else about episodes runs on the readings' own dates.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::episode::{self, EpisodePolicy, Notification};
use crate::ports::{EpisodeStore, Notice, OnCallPublisher, StateChange, TransientError};

/// What one check found and did.
#[derive(Debug, Default)]
pub struct SilenceReport {
    /// Reactors whose state was read.
    pub reactors: usize,
    /// `silent` notifications published and recorded.
    pub notified: Vec<Notification>,
    /// Notifications not published, or published but not recorded (the next check publishes
    /// the first again; the second may repeat): the reason of each.
    pub failures: Vec<TransientError>,
    /// Open episodes after the check: hot ones by severity (`warning`, `emergency`) and
    /// `silent` reactors.
    pub open: BTreeMap<&'static str, usize>,
}

/// Runs the check once at `now`.
///
/// # Errors
/// The states could not be read (transient: the next scheduled check tries again; a
/// misconfiguration: the invocation fails so that the alarm on the check's errors fires).
pub async fn check<L: EpisodeStore, P: OnCallPublisher>(
    store: &L,
    publisher: &P,
    policy: &EpisodePolicy,
    now: DateTime<Utc>,
) -> Result<SilenceReport, TransientError> {
    let states = store.all_states().await?;
    let mut report = SilenceReport {
        reactors: states.len(),
        ..SilenceReport::default()
    };
    let mut found = Vec::new();
    for (reactor, stored) in &states {
        let state = match episode::check_silence(&stored.state, reactor, now, policy) {
            Some((next, notification)) => {
                found.push((reactor.as_str(), stored.version, next.clone(), notification));
                next
            }
            None => stored.state.clone(),
        };
        if let Some(hot) = &state.hot {
            *report.open.entry(hot.severity.as_str()).or_default() += 1;
        }
        if state.silent.is_some() {
            *report.open.entry("silent").or_default() += 1;
        }
    }
    for chunk in found.chunks(P::MAX_NOTIFY_BATCH.max(1)) {
        let notices: Vec<Notice<'_>> = chunk
            .iter()
            .map(|(_, _, _, n)| Notice {
                notification: n,
                origin: None,
                traceparent: None,
            })
            .collect();
        let published = publisher.notify(&notices).await;
        let mut changes = Vec::new();
        let mut sent = Vec::new();
        for ((reactor, version, next, n), result) in chunk.iter().zip(published) {
            match result {
                Ok(_) => {
                    changes.push(StateChange {
                        reactor,
                        expected_version: Some(*version),
                        state: next,
                    });
                    sent.push(n.clone());
                }
                Err(e) => report.failures.push(e),
            }
        }
        for batch in changes.chunks(L::MAX_SAVE.max(1)) {
            for result in store.save(batch).await {
                if let Err(e) = result {
                    report.failures.push(e);
                }
            }
        }
        report.notified.extend(sent);
    }
    Ok(report)
}

//! Alert episodes for people: one reactor's state + one reading → the transition it causes.
//!
//! Machines get one alert per hot reading (the alert topic); people get one notification per
//! transition of a reactor's episode (the on-call topic): `opened`, `escalated`, `repeated`,
//! `resolved`, `silent`. Time is the readings' own `date`, so replaying old data yields the same
//! transitions, and a reading older than the state's newest never rolls it back. The silence
//! check alone needs a clock: the time of the scheduled check.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{Severity, Thresholds};

/// How episodes behave: repeat interval, hysteresis below the warning threshold, silence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodePolicy {
    /// A still-hot episode is `repeated` this long after its last notification.
    pub repeat_after: TimeDelta,
    /// Readings must fall below `warning − clear_margin_c` (°C) to count as cool.
    pub clear_margin_c: f64,
    /// Readings must stay cool this long (reading time) for the episode to be `resolved`.
    pub clear_after: TimeDelta,
    /// A reactor that reported before and sends nothing this long is `silent`.
    pub silent_after: TimeDelta,
}

impl EpisodePolicy {
    /// `ALERT_REPEAT_MINUTES` default: a page every quarter hour keeps a long episode visible
    /// without paging for each reading.
    pub const DEFAULT_REPEAT_MINUTES: i64 = 15;
    /// `ALERT_CLEAR_MARGIN_C` default, °C: hysteresis against a reactor hovering at 700 °C.
    pub const DEFAULT_CLEAR_MARGIN_C: f64 = 10.0;
    /// `ALERT_CLEAR_MINUTES` default.
    pub const DEFAULT_CLEAR_MINUTES: i64 = 5;
    /// `SILENCE_MINUTES` default.
    pub const DEFAULT_SILENCE_MINUTES: i64 = 5;
}

impl EpisodePolicy {
    /// How far the newest reading's date must move on before it alone is written to the stored
    /// state: one minute, or a fifth of `silent_after` when that is shorter. A state is written
    /// on every transition and every change of an episode; a reading that changes nothing but
    /// the date is written at most once per this interval per reactor, so the stored
    /// `last_reading_at` lags the newest reading by less than it (the silence check's
    /// precision, and how far out of order two shards' readings may be applied).
    pub fn last_reading_resolution(&self) -> TimeDelta {
        TimeDelta::minutes(1).min(self.silent_after / 5)
    }
}

/// Whether `next` must be written over `stored` (`None`: the reactor has no stored state):
/// a new reactor, any change of its hot or silent episode (transitions, peak, the cool run's
/// start), or a newest reading at least [`EpisodePolicy::last_reading_resolution`] after the
/// stored one. A change of the date alone within that interval is not written.
pub fn needs_write(
    stored: Option<&ReactorState>,
    next: &ReactorState,
    policy: &EpisodePolicy,
) -> bool {
    stored.is_none_or(|stored| {
        stored.hot != next.hot
            || stored.silent != next.silent
            || next.last_reading_at - stored.last_reading_at >= policy.last_reading_resolution()
    })
}

impl Default for EpisodePolicy {
    fn default() -> Self {
        Self {
            repeat_after: TimeDelta::minutes(Self::DEFAULT_REPEAT_MINUTES),
            clear_margin_c: Self::DEFAULT_CLEAR_MARGIN_C,
            clear_after: TimeDelta::minutes(Self::DEFAULT_CLEAR_MINUTES),
            silent_after: TimeDelta::minutes(Self::DEFAULT_SILENCE_MINUTES),
        }
    }
}

/// What happened to an episode, on the record span, in metrics and on the on-call topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EpisodeAction {
    /// The first reading at or above the warning threshold: a page.
    Opened,
    /// Warning → emergency, at the first emergency reading: a page, never delayed.
    Escalated,
    /// Still hot `repeat_after` after the last page: a page.
    Repeated,
    /// Cool for `clear_after` (or, for a silent episode, readings are back).
    Resolved,
    /// No reading for `silent_after`: a page.
    Silent,
    /// A hot reading inside an open episode: no page (recorded on the span and in metrics only).
    Suppressed,
}

impl EpisodeAction {
    /// Every action, in the order of the lifecycle.
    pub const ALL: [Self; 6] = [
        Self::Opened,
        Self::Escalated,
        Self::Repeated,
        Self::Resolved,
        Self::Silent,
        Self::Suppressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Escalated => "escalated",
            Self::Repeated => "repeated",
            Self::Resolved => "resolved",
            Self::Silent => "silent",
            Self::Suppressed => "suppressed",
        }
    }
}

impl std::fmt::Display for EpisodeAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An open hot episode: readings at or above the warning threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HotEpisode {
    /// Stable across replays: `<reactor>/hot/<first reading, UTC ms>`.
    pub id: String,
    /// The highest severity reached.
    pub severity: Severity,
    /// Highest temperature of the episode, °C.
    pub peak_c: f64,
    /// Date of the reading that opened it.
    pub first_at: DateTime<Utc>,
    /// Date of the last opened / escalated / repeated notification's reading.
    pub notified_at: DateTime<Utc>,
    /// Date of the first reading of the current cool run (below `warning − margin`), if any.
    pub cool_since: Option<DateTime<Utc>>,
}

/// An open silent episode: the reactor stopped reporting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SilentEpisode {
    /// Stable: `<reactor>/silent/<last reading before the silence, UTC ms>`.
    pub id: String,
    /// When the check found the reactor silent (the check's clock).
    pub detected_at: DateTime<Utc>,
    /// The severity its `silent` page went out with, which its `resolved` repeats (absent in
    /// states written before it was kept: the hot episode's then, as it was at the silence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// One reactor's episode state, as stored (one item per reactor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReactorState {
    /// Date of the newest reading applied; older readings are ignored.
    pub last_reading_at: DateTime<Utc>,
    /// Temperature of that reading, °C.
    pub last_c: f64,
    pub hot: Option<HotEpisode>,
    pub silent: Option<SilentEpisode>,
}

/// A notification for people: one per transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub action: EpisodeAction,
    /// Dedup key for PagerDuty / Incident Manager: the same for every notification of an episode.
    pub episode_id: String,
    pub reactor: String,
    /// The episode's severity; a silent episode is a `warning` unless the reactor was in an
    /// emergency when it went quiet.
    pub severity: Severity,
    /// Highest temperature of the episode, °C (the last one for a silent episode).
    pub peak_c: f64,
    /// Temperature of the last reading, °C.
    pub last_c: f64,
    /// Date of the episode's first reading (for a silent episode: the last reading heard).
    pub first_reading_at: DateTime<Utc>,
    /// Date of the reading that caused this notification (for `silent`: the last one heard).
    pub last_reading_at: DateTime<Utc>,
    /// On a `resolved` that closes an episode another delivery's state has no place for (two
    /// shards of one reactor raced and this one's write lost): the episode that goes on, if
    /// any. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
}

/// What one reading did to a reactor's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The state after the reading (unchanged when the reading was older than the state).
    pub state: ReactorState,
    /// Notifications to send, in order (at most two: a silent episode resolved, then a hot
    /// episode opened by the same reading).
    pub notifications: Vec<Notification>,
    /// The record's episode action: the last notification's, `suppressed` for a hot reading
    /// that pages no one, `None` otherwise.
    pub action: Option<EpisodeAction>,
}

fn stamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Applies one reading (`temp_c` at `date`) to a reactor's state (`None`: never seen).
pub fn apply(
    state: Option<&ReactorState>,
    reactor: &str,
    temp_c: f64,
    date: DateTime<Utc>,
    thresholds: &Thresholds,
    policy: &EpisodePolicy,
) -> Step {
    if let Some(state) = state
        && date < state.last_reading_at
    {
        return Step {
            state: state.clone(),
            notifications: Vec::new(),
            action: thresholds
                .classify(temp_c)
                .map(|_| EpisodeAction::Suppressed),
        };
    }
    let mut next = state.cloned().unwrap_or(ReactorState {
        last_reading_at: date,
        last_c: temp_c,
        hot: None,
        silent: None,
    });
    next.last_reading_at = date;
    next.last_c = temp_c;
    let mut notifications = Vec::new();

    if let Some(silent) = next.silent.take() {
        let severity = silent
            .severity
            .unwrap_or_else(|| next.hot.as_ref().map_or(Severity::Warning, |h| h.severity));
        notifications.push(Notification {
            action: EpisodeAction::Resolved,
            episode_id: silent.id,
            reactor: reactor.to_owned(),
            severity,
            peak_c: temp_c,
            last_c: temp_c,
            first_reading_at: state.map_or(date, |s| s.last_reading_at),
            last_reading_at: date,
            superseded_by: None,
        });
    }

    let severity = thresholds.classify(temp_c);
    let clear_below = thresholds.warning() - policy.clear_margin_c;
    let mut action = notifications.last().map(|n| n.action);
    match (next.hot.as_mut(), severity) {
        (None, None) => {}
        (None, Some(severity)) => {
            let hot = HotEpisode {
                id: format!("{reactor}/hot/{}", stamp(&date)),
                severity,
                peak_c: temp_c,
                first_at: date,
                notified_at: date,
                cool_since: None,
            };
            notifications.push(notification(
                EpisodeAction::Opened,
                reactor,
                &hot,
                temp_c,
                date,
            ));
            next.hot = Some(hot);
            action = Some(EpisodeAction::Opened);
        }
        (Some(hot), Some(severity)) => {
            hot.peak_c = hot.peak_c.max(temp_c);
            hot.cool_since = None;
            let page = if severity > hot.severity {
                hot.severity = severity;
                Some(EpisodeAction::Escalated)
            } else if date - hot.notified_at >= policy.repeat_after {
                Some(EpisodeAction::Repeated)
            } else {
                None
            };
            match page {
                Some(page) => {
                    hot.notified_at = date;
                    notifications.push(notification(page, reactor, hot, temp_c, date));
                    action = Some(page);
                }
                None => action = action.or(Some(EpisodeAction::Suppressed)),
            }
        }
        (Some(hot), None) if temp_c < clear_below => {
            let since = *hot.cool_since.get_or_insert(date);
            if date - since >= policy.clear_after {
                let resolved = notification(EpisodeAction::Resolved, reactor, hot, temp_c, date);
                notifications.push(resolved);
                next.hot = None;
                action = Some(EpisodeAction::Resolved);
            }
        }
        (Some(hot), None) => hot.cool_since = None,
    }
    Step {
        state: next,
        notifications,
        action,
    }
}

/// The `resolved` pages that close episodes this delivery opened (`sent`, its pages in order)
/// but that its readings, applied again to `current` (the state another delivery wrote
/// first), would not open: those episodes are superseded by `current`'s, and would stay open
/// on call forever otherwise. `readings` are the delivery's (°C, date), in reading time.
pub fn superseded(
    current: Option<&ReactorState>,
    reactor: &str,
    readings: &[(f64, DateTime<Utc>)],
    sent: &[Notification],
    thresholds: &Thresholds,
    policy: &EpisodePolicy,
) -> Vec<Notification> {
    let mut state = current.cloned();
    let mut kept: Vec<String> = Vec::new();
    for &(temp_c, date) in readings {
        let step = apply(state.as_ref(), reactor, temp_c, date, thresholds, policy);
        kept.extend(step.notifications.into_iter().map(|n| n.episode_id));
        state = Some(step.state);
    }
    let going_on = state
        .as_ref()
        .and_then(|s| s.hot.as_ref())
        .map(|h| h.id.clone());
    kept.extend(going_on.clone());
    let mut closes: Vec<Notification> = Vec::new();
    for page in sent.iter().filter(|n| n.action != EpisodeAction::Silent) {
        if page.episode_id.contains("/silent/") || kept.contains(&page.episode_id) {
            continue;
        }
        match closes.iter_mut().find(|c| c.episode_id == page.episode_id) {
            Some(_) if page.action == EpisodeAction::Resolved => {
                closes.retain(|c| c.episode_id != page.episode_id);
            }
            Some(close) => {
                close.severity = page.severity;
                close.peak_c = close.peak_c.max(page.peak_c);
                close.last_c = page.last_c;
                close.last_reading_at = page.last_reading_at;
            }
            None if page.action == EpisodeAction::Resolved => {}
            None => closes.push(Notification {
                action: EpisodeAction::Resolved,
                superseded_by: going_on.clone(),
                ..page.clone()
            }),
        }
    }
    closes
}

/// The state to keep when only some of one reading's notifications went out (at most two:
/// its silent episode `resolved`, then its hot episode's): `before` (the state before the
/// reading) with the part of `after` (the state after it) whose notification went out. The
/// reading itself is not recorded (`last_reading_at` stays), so applying it again sends the
/// rest and nothing twice.
pub fn partly_applied(
    before: Option<&ReactorState>,
    after: &ReactorState,
    silent_sent: bool,
    hot_sent: bool,
) -> Option<ReactorState> {
    let mut kept = before?.clone();
    if silent_sent {
        kept.silent = None;
    }
    if hot_sent {
        kept.hot.clone_from(&after.hot);
    }
    Some(kept)
}

fn notification(
    action: EpisodeAction,
    reactor: &str,
    hot: &HotEpisode,
    last_c: f64,
    at: DateTime<Utc>,
) -> Notification {
    Notification {
        action,
        episode_id: hot.id.clone(),
        reactor: reactor.to_owned(),
        severity: hot.severity,
        peak_c: hot.peak_c,
        last_c,
        first_reading_at: hot.first_at,
        last_reading_at: at,
        superseded_by: None,
    }
}

/// The silence check for one reactor at `now` (the scheduled check's clock): the new state and
/// its `silent` notification when the reactor has sent nothing for `silent_after` and is not
/// already known to be silent; `None` otherwise.
pub fn check_silence(
    state: &ReactorState,
    reactor: &str,
    now: DateTime<Utc>,
    policy: &EpisodePolicy,
) -> Option<(ReactorState, Notification)> {
    if state.silent.is_some() || now - state.last_reading_at < policy.silent_after {
        return None;
    }
    let id = format!("{reactor}/silent/{}", stamp(&state.last_reading_at));
    let hot = state.hot.as_ref();
    let severity = hot.map_or(Severity::Warning, |h| h.severity);
    let notification = Notification {
        action: EpisodeAction::Silent,
        episode_id: id.clone(),
        reactor: reactor.to_owned(),
        severity,
        peak_c: hot.map_or(state.last_c, |h| h.peak_c),
        last_c: state.last_c,
        first_reading_at: state.last_reading_at,
        last_reading_at: state.last_reading_at,
        superseded_by: None,
    };
    let mut next = state.clone();
    next.silent = Some(SilentEpisode {
        id,
        detected_at: now,
        severity: Some(severity),
    });
    Some((next, notification))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const R: &str = "reactor-1";

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + TimeDelta::seconds(seconds)
    }

    /// Feeds `(seconds, temp)` readings from no state; returns the final state and every
    /// notification's action with the second it came at.
    fn run(
        state: Option<ReactorState>,
        readings: impl IntoIterator<Item = (i64, f64)>,
    ) -> (Option<ReactorState>, Vec<(EpisodeAction, i64)>) {
        let (thresholds, policy) = (Thresholds::default(), EpisodePolicy::default());
        let mut state = state;
        let mut actions = Vec::new();
        for (s, temp) in readings {
            let step = apply(state.as_ref(), R, temp, at(s), &thresholds, &policy);
            actions.extend(step.notifications.iter().map(|n| (n.action, s)));
            state = Some(step.state);
        }
        (state, actions)
    }

    #[test]
    fn ten_minutes_at_750_open_one_episode_and_page_once() {
        let (state, actions) = run(None, (0..600).map(|s| (s, 750.0)));
        assert_eq!(actions, vec![(EpisodeAction::Opened, 0)]);
        let hot = state.unwrap().hot.unwrap();
        assert_eq!(hot.severity, Severity::Warning);
        assert_eq!(hot.id, "reactor-1/hot/2026-11-01T00:00:00.000Z");
    }

    #[test]
    fn the_first_emergency_reading_escalates_at_once_and_only_once() {
        let readings = (0..60)
            .map(|s| (s, 750.0))
            .chain((60..120).map(|s| (s, 850.0)));
        let (state, actions) = run(None, readings);
        assert_eq!(
            actions,
            vec![(EpisodeAction::Opened, 0), (EpisodeAction::Escalated, 60)]
        );
        assert_eq!(state.unwrap().hot.unwrap().peak_c, 850.0);
    }

    #[test]
    fn an_emergency_as_first_reading_opens_as_emergency_without_escalating() {
        let (state, actions) = run(None, [(0, 900.0), (1, 750.0), (2, 905.0)]);
        assert_eq!(actions, vec![(EpisodeAction::Opened, 0)]);
        assert_eq!(state.unwrap().hot.unwrap().severity, Severity::Emergency);
    }

    #[test]
    fn twenty_minutes_hot_repeats_by_the_interval_from_the_last_page() {
        let readings = (0..20 * 60).map(|s| (s, 750.0));
        let (_, actions) = run(None, readings);
        assert_eq!(
            actions,
            vec![
                (EpisodeAction::Opened, 0),
                (EpisodeAction::Repeated, 15 * 60)
            ]
        );
        let escalate_then_hot = (0..60)
            .map(|s| (s, 750.0))
            .chain((60..20 * 60).map(|s| (s, 850.0)));
        let (_, actions) = run(None, escalate_then_hot);
        assert_eq!(
            actions,
            vec![
                (EpisodeAction::Opened, 0),
                (EpisodeAction::Escalated, 60),
                (EpisodeAction::Repeated, 60 + 15 * 60)
            ]
        );
    }

    #[test]
    fn cooling_resolves_after_five_cool_minutes_and_the_hysteresis_band_restarts_the_clock() {
        let readings = [(0, 750.0), (10, 650.0), (200, 695.0), (210, 600.0)]
            .into_iter()
            .chain((211..=510).map(|s| (s, 600.0)));
        let (state, actions) = run(None, readings);
        assert_eq!(
            actions,
            vec![(EpisodeAction::Opened, 0), (EpisodeAction::Resolved, 510)]
        );
        assert_eq!(state.unwrap().hot, None);
    }

    #[test]
    fn a_resolved_reactor_that_heats_again_opens_a_new_episode_with_a_new_id() {
        let (state, _) = run(None, [(0, 750.0), (10, 600.0), (310, 600.0)]);
        let step = apply(
            state.as_ref(),
            R,
            760.0,
            at(400),
            &Thresholds::default(),
            &EpisodePolicy::default(),
        );
        assert_eq!(step.action, Some(EpisodeAction::Opened));
        assert_eq!(
            step.notifications[0].episode_id,
            "reactor-1/hot/2026-11-01T00:06:40.000Z"
        );
    }

    #[test]
    fn an_older_reading_never_rolls_the_state_back() {
        let (state, _) = run(None, [(0, 750.0), (100, 600.0)]);
        let before = state.clone().unwrap();
        let (after, actions) = run(state, [(50, 900.0), (5, 600.0)]);
        assert!(actions.is_empty());
        assert_eq!(after.unwrap(), before);
    }

    #[test]
    fn replaying_the_same_readings_gives_no_second_transition() {
        let readings: Vec<(i64, f64)> = (0..30)
            .map(|s| (s, 750.0))
            .chain((30..40).map(|s| (s, 850.0)))
            .collect();
        let (state, first) = run(None, readings.clone());
        let (again, replayed) = run(state.clone(), readings);
        assert_eq!(first.len(), 2);
        assert!(replayed.is_empty(), "{replayed:?}");
        assert_eq!(again, state);
    }

    #[test]
    fn a_hot_reading_inside_an_episode_is_suppressed() {
        let (state, _) = run(None, [(0, 750.0)]);
        let step = apply(
            state.as_ref(),
            R,
            760.0,
            at(1),
            &Thresholds::default(),
            &EpisodePolicy::default(),
        );
        assert!(step.notifications.is_empty());
        assert_eq!(step.action, Some(EpisodeAction::Suppressed));
    }

    #[test]
    fn silence_pages_once_and_the_next_reading_resolves_it() {
        let policy = EpisodePolicy::default();
        let (state, _) = run(None, [(0, 600.0)]);
        let state = state.unwrap();
        assert!(check_silence(&state, R, at(299), &policy).is_none());
        let (silent, page) = check_silence(&state, R, at(300), &policy).unwrap();
        assert_eq!(page.action, EpisodeAction::Silent);
        assert_eq!(page.episode_id, "reactor-1/silent/2026-11-01T00:00:00.000Z");
        assert!(check_silence(&silent, R, at(900), &policy).is_none());

        let (after, actions) = run(Some(silent), [(400, 610.0)]);
        assert_eq!(actions, vec![(EpisodeAction::Resolved, 400)]);
        assert_eq!(after.unwrap().silent, None);
    }

    #[test]
    fn a_silent_reactor_that_returns_hot_resolves_the_silence_then_opens() {
        let policy = EpisodePolicy::default();
        let (state, _) = run(None, [(0, 600.0)]);
        let (silent, _) = check_silence(&state.unwrap(), R, at(600), &policy).unwrap();
        let (_, actions) = run(Some(silent), [(700, 820.0)]);
        assert_eq!(
            actions,
            vec![(EpisodeAction::Resolved, 700), (EpisodeAction::Opened, 700)]
        );
    }

    #[test]
    fn a_state_is_written_on_every_episode_change_and_the_date_alone_once_a_minute() {
        let policy = EpisodePolicy::default();
        let (state, _) = run(None, [(0, 600.0)]);
        let stored = state.unwrap();
        assert!(needs_write(None, &stored, &policy));
        let (later, _) = run(Some(stored.clone()), [(59, 610.0)]);
        assert!(!needs_write(Some(&stored), &later.unwrap(), &policy));
        let (minute, _) = run(Some(stored.clone()), [(60, 610.0)]);
        assert!(needs_write(Some(&stored), &minute.unwrap(), &policy));
        let (hot, _) = run(Some(stored.clone()), [(1, 750.0)]);
        let hot = hot.unwrap();
        assert!(needs_write(Some(&stored), &hot, &policy));
        let (cooling, _) = run(Some(hot.clone()), [(2, 600.0)]);
        assert!(needs_write(Some(&hot), &cooling.unwrap(), &policy));
        let (suppressed, _) = run(Some(hot.clone()), [(3, 740.0)]);
        assert!(!needs_write(Some(&hot), &suppressed.unwrap(), &policy));
        let short = EpisodePolicy {
            silent_after: TimeDelta::minutes(2),
            ..policy
        };
        assert_eq!(short.last_reading_resolution(), TimeDelta::seconds(24));
    }

    #[test]
    fn only_an_episode_the_current_state_would_not_open_again_is_superseded() {
        let (thresholds, policy) = (Thresholds::default(), EpisodePolicy::default());
        // This delivery opened at 50 s and escalated at 60 s.
        let readings = [(750.0, at(50)), (850.0, at(60))];
        let sent: Vec<Notification> = {
            let mut state = None;
            let mut sent = Vec::new();
            for &(temp, date) in &readings {
                let step = apply(state.as_ref(), R, temp, date, &thresholds, &policy);
                sent.extend(step.notifications);
                state = Some(step.state);
            }
            sent
        };
        // Another shard wrote first: an episode opened at 0 s, newest reading at 70 s.
        let (other, _) = run(None, [(0, 760.0), (70, 770.0)]);
        let closes = superseded(other.as_ref(), R, &readings, &sent, &thresholds, &policy);
        assert_eq!(closes.len(), 1);
        let close = &closes[0];
        assert_eq!(close.action, EpisodeAction::Resolved);
        assert_eq!(close.episode_id, sent[0].episode_id);
        assert_eq!(close.severity, Severity::Emergency);
        assert_eq!(close.peak_c, 850.0);
        assert_eq!(close.last_reading_at, at(60));
        let going_on = other
            .as_ref()
            .and_then(|s| s.hot.as_ref())
            .map(|h| h.id.clone());
        assert_eq!(close.superseded_by, going_on);

        // A state the readings still open the same episode on (the silence check wrote it):
        // nothing to close.
        let (quiet, _) = run(None, [(0, 600.0)]);
        assert!(superseded(quiet.as_ref(), R, &readings, &sent, &thresholds, &policy).is_empty());
    }
}

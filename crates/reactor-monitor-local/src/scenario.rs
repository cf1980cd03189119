//! Scripted datasets: readings whose shape, not chance, decides what the pipeline must do.
//! `reactor-monitor generate --scenario NAME` writes or puts them, `local --scenario NAME`
//! runs them, and the tests use the same definitions.

use std::fmt;
use std::str::FromStr;

use crate::generate::OutgoingRecord;

/// A scripted dataset, by name (`--scenario`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// One reactor's alert episode from opening to silence: [`episodes`].
    Episodes,
}

impl Scenario {
    /// Every scenario, for help texts and errors.
    pub const ALL: [Self; 1] = [Self::Episodes];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Episodes => "episodes",
        }
    }

    /// The scenario's readings, in order, one Kinesis record each (partition key: the reactor).
    pub fn records(self) -> Vec<OutgoingRecord> {
        match self {
            Self::Episodes => episodes::heard()
                .into_iter()
                .map(|data| OutgoingRecord {
                    partition_key: episodes::REACTOR.to_string(),
                    data,
                    intent: None,
                })
                .collect(),
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!("no scenario {name:?}: one of {}", names.join(", "))
            })
    }
}

/// What `--scenario` says in `--help`. A unit test holds it to [`episodes::EXPECTED`].
pub const HELP: &str = "A scripted dataset instead of the random mix (--count, --readings and \
the shares do not apply).\n\n\
episodes: reactor-7, one reading every 10 s from 2026-11-01T00:00:00Z (time is the readings' \
own date), 200 readings. It ramps up from 640 °C by 5 °C a reading, crosses the warning \
threshold at 00:02:00, holds 750 °C (warning) until 00:22:00, spikes to 850 °C (emergency) for \
5 minutes, cools to 600 °C (below warning − 10 °C) at 00:27:00 and sends its last reading at \
00:33:10. \
With the default episode settings the on-call topic gets five notifications: opened (warning) \
at 00:02:00, repeated at 00:17:00 (15 minutes on), escalated at 00:22:00, resolved at 00:32:00 \
(5 minutes cool), and silent from the first silence check 5 minutes after the last reading \
(`local` runs it after the data; `up` every minute). The 147 other hot readings page no one \
(suppressed).";

/// One reactor's alert episode, one reading every [`STEP_SECONDS`] from [`start`]: a ramp from
/// 640 °C by 0.5 °C/s that crosses the warning threshold at [`OPENED_SECOND`], 750 °C
/// (warning) long enough to be repeated, 850 °C (emergency) from [`ESCALATED_SECOND`] for 5
/// minutes, then 600 °C (below warning − margin) until [`LAST_HEARD_SECOND`]; then silence,
/// and one reading back at [`EPISODE_RETURN_SECOND`]. Times are seconds from [`start`];
/// [`index`] gives a reading's position in [`heard`]. [`EXPECTED`] lists the notifications it
/// yields under the default [`EpisodePolicy`](reactor_monitor::domain::episode::EpisodePolicy).
pub mod episodes {
    use chrono::{DateTime, TimeDelta, TimeZone, Utc};
    use reactor_monitor::domain::episode::EpisodeAction;

    pub const REACTOR: &str = "reactor-7";
    /// Ramp: 640 °C at second 0, +0.5 °C a second, up to the warning plateau.
    const RAMP_FROM_C: f64 = 640.0;
    const RAMP_C_PER_SECOND: f64 = 0.5;
    const WARNING_C: f64 = 750.0;
    const EMERGENCY_C: f64 = 850.0;
    const COOL_C: f64 = 600.0;
    /// The ramp reaches 700 °C, the default warning threshold: the episode opens.
    pub const OPENED_SECOND: i64 = 120;
    /// The first emergency reading (after 20 minutes of warning): escalated at once.
    pub const ESCALATED_SECOND: i64 = 1_320;
    /// The first reading below warning − margin: the cool run starts.
    pub const COOL_SECOND: i64 = 1_620;
    /// One reading every this many seconds: enough for every transition to fall on a
    /// reading, few enough for the emulator (each hot reading is also an alert).
    pub const STEP_SECONDS: i64 = 10;
    /// Seconds of readings before the silence.
    pub const HEARD_SECONDS: i64 = 2_000;
    /// The last reading before the silence.
    pub const LAST_HEARD_SECOND: i64 = HEARD_SECONDS - STEP_SECONDS;
    /// When the silence check runs: 5 minutes after the last reading.
    pub const SILENCE_CHECK_SECOND: i64 = LAST_HEARD_SECOND + 300;
    /// The reading after the silence.
    pub const EPISODE_RETURN_SECOND: i64 = 2_400;

    pub fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
    }

    pub fn at(second: i64) -> DateTime<Utc> {
        start() + TimeDelta::seconds(second)
    }

    /// The temperature at `second`, °C.
    pub fn temp(second: i64) -> f64 {
        match second {
            ..ESCALATED_SECOND => {
                (RAMP_FROM_C + RAMP_C_PER_SECOND * second.max(0) as f64).min(WARNING_C)
            }
            ESCALATED_SECOND..COOL_SECOND => EMERGENCY_C,
            _ => COOL_C,
        }
    }

    pub fn payload(second: i64) -> Vec<u8> {
        format!(
            r#"{{"temp":{},"reactor":"{REACTOR}","date":"{}"}}"#,
            temp(second),
            at(second).to_rfc3339()
        )
        .into_bytes()
    }

    /// The readings before the silence, in order: seconds 0, [`STEP_SECONDS`], … up to
    /// [`LAST_HEARD_SECOND`].
    pub fn heard() -> Vec<Vec<u8>> {
        (0..HEARD_SECONDS)
            .step_by(STEP_SECONDS as usize)
            .map(payload)
            .collect()
    }

    /// The position in [`heard`] of the reading at `second` (the one before, between two).
    pub fn index(second: i64) -> usize {
        (second / STEP_SECONDS) as usize
    }

    /// Every notification, in order: action and the second of the reading it names as last
    /// (`silent`: the last reading heard; then the reading back resolves the silent episode).
    pub const EXPECTED: [(EpisodeAction, i64); 6] = [
        (EpisodeAction::Opened, OPENED_SECOND),
        (EpisodeAction::Repeated, OPENED_SECOND + 15 * 60),
        (EpisodeAction::Escalated, ESCALATED_SECOND),
        (EpisodeAction::Resolved, COOL_SECOND + 5 * 60),
        (EpisodeAction::Silent, LAST_HEARD_SECOND),
        (EpisodeAction::Resolved, EPISODE_RETURN_SECOND),
    ];

    /// Hot readings of [`heard`] that page no one: inside the open episode, neither the first,
    /// nor an escalation, nor a repeat.
    pub const SUPPRESSED: usize = ((COOL_SECOND - OPENED_SECOND) / STEP_SECONDS) as usize - 3;
}

#[cfg(test)]
mod tests {
    use super::episodes::{self, EXPECTED};
    use super::*;
    use reactor_monitor::domain::episode::{self, EpisodeAction, EpisodePolicy, ReactorState};
    use reactor_monitor::domain::{Reading, Thresholds};

    /// One scenario reading through the pure state machine: the notifications' actions and
    /// last reading times, and whether the reading was suppressed.
    fn apply(
        state: &mut Option<ReactorState>,
        second: i64,
    ) -> (Vec<(EpisodeAction, chrono::DateTime<chrono::Utc>)>, bool) {
        let reading = Reading::parse(&episodes::payload(second)).unwrap();
        let step = episode::apply(
            state.as_ref(),
            &reading.reactor,
            reading.temp_c,
            reading.date.to_utc(),
            &Thresholds::default(),
            &EpisodePolicy::default(),
        );
        *state = Some(step.state);
        let pages = step
            .notifications
            .iter()
            .map(|n| (n.action, n.last_reading_at))
            .collect();
        (pages, step.action == Some(EpisodeAction::Suppressed))
    }

    /// The readings through the pure state machine, the silence check, then the reading back.
    #[test]
    fn the_episode_scenario_yields_exactly_the_expected_notifications() {
        let policy = EpisodePolicy::default();
        let mut state: Option<ReactorState> = None;
        let (mut got, mut suppressed) = (Vec::new(), 0);
        for second in (0..episodes::HEARD_SECONDS).step_by(episodes::STEP_SECONDS as usize) {
            let (pages, quiet) = apply(&mut state, second);
            got.extend(pages);
            suppressed += usize::from(quiet);
        }
        let heard = state.clone().unwrap();
        let check = episodes::at(episodes::SILENCE_CHECK_SECOND);
        let a_minute_early = check - policy.silent_after / 5;
        assert!(
            episode::check_silence(&heard, episodes::REACTOR, a_minute_early, &policy).is_none(),
            "not silent before 5 minutes"
        );
        let (silent, page) = episode::check_silence(&heard, episodes::REACTOR, check, &policy)
            .expect("silent 5 minutes after the last reading");
        got.push((page.action, page.last_reading_at));
        state = Some(silent);
        got.extend(apply(&mut state, episodes::EPISODE_RETURN_SECOND).0);

        let expected: Vec<_> = EXPECTED
            .iter()
            .map(|&(a, s)| (a, episodes::at(s)))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(suppressed, episodes::SUPPRESSED);
    }

    #[test]
    fn the_scenario_ramps_holds_warning_spikes_and_cools() {
        let t = episodes::temp;
        assert_eq!(t(0), 640.0);
        assert!(t(episodes::OPENED_SECOND - 1) < 700.0 && t(episodes::OPENED_SECOND) == 700.0);
        assert_eq!(t(episodes::ESCALATED_SECOND - 1), 750.0);
        assert_eq!(t(episodes::ESCALATED_SECOND), 850.0);
        assert_eq!(t(episodes::COOL_SECOND), 600.0);
        assert!(
            (0..episodes::HEARD_SECONDS)
                .all(|s| t(s + 1) >= t(s) || s + 1 == episodes::COOL_SECOND)
        );
    }

    #[test]
    fn the_help_names_every_notification_at_its_reading_time() {
        let flat = HELP.replace('\n', " ");
        for &(action, second) in &EXPECTED[..5] {
            let at = episodes::at(second).format("%H:%M:%S").to_string();
            let said = match action {
                EpisodeAction::Silent => format!("last reading at {at}"),
                EpisodeAction::Opened => format!("opened (warning) at {at}"),
                _ => format!("{action} at {at}"),
            };
            assert!(flat.contains(&said), "{said:?} in the help");
        }
        assert!(flat.contains(&format!(
            "{} other hot readings",
            thousands(episodes::SUPPRESSED)
        )));
        let readings = episodes::heard().len();
        assert!(flat.contains(&format!("{} readings", thousands(readings))));
        assert!(flat.contains(&format!("every {} s", episodes::STEP_SECONDS)));
    }

    fn thousands(n: usize) -> String {
        crate::report::thousands(n)
    }

    #[test]
    fn scenario_records_are_the_readings_keyed_by_their_reactor() {
        let records = Scenario::Episodes.records();
        assert_eq!(records.len(), 200);
        assert!(records.iter().all(|r| r.partition_key == episodes::REACTOR));
        assert_eq!(records[7].data, episodes::payload(70));
        assert_eq!(episodes::index(episodes::LAST_HEARD_SECOND), 199);
        assert_eq!("episodes".parse::<Scenario>(), Ok(Scenario::Episodes));
        assert!("nope".parse::<Scenario>().unwrap_err().contains("episodes"));
    }
}

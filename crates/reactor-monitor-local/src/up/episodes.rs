//! `up`'s view of alert episodes: the open episodes of the episode state table, and the
//! scheduled silence check (`reactor_monitor::silence::check`) run on a timer with the wall
//! clock, as EventBridge Scheduler runs the deployed one.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::on_call::{self, SilenceCheckRun};
use reactor_monitor::domain::episode::{EpisodePolicy, ReactorState};
use reactor_monitor::ports::{EpisodeStore, OnCallPublisher};

/// One open episode, as the episode state table holds it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OpenEpisode {
    pub reactor: String,
    /// `warning`, `emergency`, or `silent`.
    pub severity: &'static str,
    /// Highest temperature of a hot episode, °C (`None` for a silent one).
    pub peak_c: Option<f64>,
    /// A hot episode's first reading, a silent one's last reading heard (reading time).
    pub since: DateTime<Utc>,
    pub episode_id: String,
}

impl OpenEpisode {
    /// A reactor's open episodes: its hot one, its silent one, both, or none.
    pub fn of(reactor: &str, state: &ReactorState) -> Vec<Self> {
        let hot = state.hot.as_ref().map(|hot| Self {
            reactor: reactor.to_string(),
            severity: hot.severity.as_str(),
            peak_c: Some(hot.peak_c),
            since: hot.first_at,
            episode_id: hot.id.clone(),
        });
        let silent = state.silent.as_ref().map(|silent| Self {
            reactor: reactor.to_string(),
            severity: "silent",
            peak_c: None,
            since: state.last_reading_at,
            episode_id: silent.id.clone(),
        });
        hot.into_iter().chain(silent).collect()
    }

    /// `reactor-1  warning  peak 750.0 °C  since 2020-03-07T14:29:50Z  reactor-1/hot/…`
    pub fn line(&self) -> String {
        let peak = self
            .peak_c
            .map_or_else(|| "-".to_string(), |c| format!("{c:.1} °C"));
        format!(
            "{:<12} {:<9}  peak {peak:>10}  since {}  {}",
            self.reactor,
            self.severity,
            self.since.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.episode_id
        )
    }
}

/// The last silence check: when it ran (wall clock), and what it found or why it failed.
type LastCheck = (DateTime<Utc>, Result<SilenceCheckRun, String>);

/// Open episodes and silence checks, as the live view shows them.
pub(super) struct EpisodeWatch {
    policy: EpisodePolicy,
    /// How often the silence check runs.
    pub every: Duration,
    open: Vec<OpenEpisode>,
    /// Why the states could not be read, the last time they were not.
    unreadable: Option<String>,
    last_check: Option<LastCheck>,
    /// Invocations seen at the last read of the states: states change only with them (and
    /// with a silence check).
    read_after: Option<usize>,
}

impl EpisodeWatch {
    pub fn new(policy: EpisodePolicy, every: Duration) -> Self {
        Self {
            policy,
            every,
            open: Vec::new(),
            unreadable: None,
            last_check: None,
            read_after: None,
        }
    }

    /// Reads the open episodes again when an invocation ran since the last read; true when
    /// they changed.
    pub async fn refresh<L: EpisodeStore>(&mut self, store: &L, invocations: usize) -> bool {
        if self.read_after == Some(invocations) {
            return false;
        }
        self.read_after = Some(invocations);
        self.read(store).await
    }

    async fn read<L: EpisodeStore>(&mut self, store: &L) -> bool {
        match store.all_states().await {
            Ok(states) => {
                let mut open: Vec<OpenEpisode> = states
                    .iter()
                    .flat_map(|(reactor, stored)| OpenEpisode::of(reactor, &stored.state))
                    .collect();
                open.sort_by(|a, b| (&a.reactor, &a.episode_id).cmp(&(&b.reactor, &b.episode_id)));
                self.unreadable = None;
                let changed = open != self.open;
                self.open = open;
                changed
            }
            Err(e) => {
                self.unreadable = Some(e.to_string());
                false
            }
        }
    }

    /// Runs the silence check now, then reads the open episodes again.
    pub async fn check<L: EpisodeStore, P: OnCallPublisher>(&mut self, store: &L, publisher: &P) {
        let now = Utc::now();
        let result = on_call::silence_check(store, publisher, &self.policy, now)
            .await
            .map(|(run, _)| run)
            .map_err(|e| format!("{e:#}"));
        self.last_check = Some((now, result));
        self.read(store).await;
    }

    /// The open episodes, one line each (`episode ` first), or that there are none.
    pub fn open_lines(&self) -> Vec<String> {
        self.open_texts()
            .into_iter()
            .map(|(tag, text)| format!("{tag:<9} {text}"))
            .collect()
    }

    /// `("episode", line)` per open episode, or `("episodes", why there is none to show)`.
    fn open_texts(&self) -> Vec<(&'static str, String)> {
        if let Some(why) = &self.unreadable {
            return vec![(
                "episodes",
                format!("the episode table could not be read: {why}"),
            )];
        }
        if self.open.is_empty() {
            return vec![("episodes", "none open".to_string())];
        }
        self.open.iter().map(|e| ("episode", e.line())).collect()
    }

    /// When the silence check last ran and what it found (`silence ` first).
    pub fn check_line(&self) -> String {
        format!("silence   check {}", self.check_text())
    }

    fn check_text(&self) -> String {
        let every = self.every.as_secs();
        match &self.last_check {
            None => format!("every {every} s: not run yet"),
            Some((at, Ok(run))) => format!(
                "every {every} s, last at {} UTC: {}",
                at.format("%H:%M:%S"),
                run.describe()
            ),
            Some((at, Err(why))) => format!(
                "every {every} s, last at {} UTC: failed: {why}",
                at.format("%H:%M:%S")
            ),
        }
    }

    /// The frame's section: the open episodes, then the silence check.
    pub fn frame_lines(&self) -> Vec<String> {
        let mut lines =
            vec!["open episodes (reactor, severity, peak, since, episode id)".to_string()];
        lines.extend(
            self.open_texts()
                .into_iter()
                .map(|(_, text)| format!("  {text}")),
        );
        lines.push(format!("silence check {}", self.check_text()));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use reactor_monitor::adapters::memory::MemoryStore;
    use reactor_monitor::domain::Thresholds;
    use reactor_monitor::domain::episode::{self, EpisodePolicy};
    use reactor_monitor::ports::StateChange;

    fn at(second: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2020, 3, 7, 14, 29, 50).unwrap() + chrono::TimeDelta::seconds(second)
    }

    #[test]
    fn a_hot_and_silent_reactor_shows_both_episodes() {
        let policy = EpisodePolicy::default();
        let step = episode::apply(
            None,
            "reactor-1",
            750.0,
            at(0),
            &Thresholds::default(),
            &policy,
        );
        let (silent, _) =
            episode::check_silence(&step.state, "reactor-1", at(600), &policy).unwrap();

        let open = OpenEpisode::of("reactor-1", &silent);

        let lines: Vec<String> = open.iter().map(OpenEpisode::line).collect();
        assert_eq!(
            lines,
            [
                "reactor-1    warning    peak   750.0 °C  since 2020-03-07T14:29:50Z  \
                 reactor-1/hot/2020-03-07T14:29:50.000Z",
                "reactor-1    silent     peak          -  since 2020-03-07T14:29:50Z  \
                 reactor-1/silent/2020-03-07T14:29:50.000Z",
            ]
        );
    }

    #[tokio::test]
    async fn the_watch_reads_open_episodes_once_per_invocation_and_after_a_check() {
        let store = MemoryStore::default();
        let policy = EpisodePolicy::default();
        let mut watch = EpisodeWatch::new(policy, Duration::from_secs(60));
        assert_eq!(
            watch.check_line(),
            "silence   check every 60 s: not run yet"
        );
        assert!(!watch.refresh(&store, 0).await);
        assert_eq!(watch.open_lines(), ["episodes  none open"]);
        assert_eq!(
            watch.frame_lines()[1..],
            ["  none open", "silence check every 60 s: not run yet"]
        );

        let step = episode::apply(
            None,
            "reactor-1",
            750.0,
            at(0),
            &Thresholds::default(),
            &policy,
        );
        let change = StateChange {
            reactor: "reactor-1",
            expected_version: None,
            state: &step.state,
        };
        let written = store.save(&[change]).await;
        assert!(written.iter().all(Result::is_ok));

        assert!(
            !watch.refresh(&store, 0).await,
            "no invocation since the last read"
        );
        assert!(watch.refresh(&store, 1).await);
        assert!(watch.open_lines()[0].starts_with("episode   reactor-1    warning"));

        let publisher = reactor_monitor::adapters::memory::MemoryAlerts::default();
        watch.check(&store, &publisher).await;
        let line = watch.check_line();
        assert!(
            line.ends_with(
                "1 reactor checked, 1 silent page (reactor-1); open: 1 warning, 0 emergency, \
                 1 silent"
            ),
            "{line}"
        );
        assert_eq!(watch.open_lines().len(), 2, "hot and silent");
    }
}

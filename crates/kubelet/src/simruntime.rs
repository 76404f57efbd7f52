//! The simulated container runtime of hollow nodes: no process runs, but
//! a pod's containers follow a script read from its annotations, and
//! their state at any moment is a pure function of the pod's start time.
//! So an agent restart picks up where it was (the start time is in
//! `status.startTime`), and the next change is known in advance.
//!
//! * `simulate.capstan.io/exit-after: "3s"`: the containers exit that long
//!   after starting, with `simulate.capstan.io/exit-code` (default `0`).
//!   Whether they start again follows `spec.restartPolicy`, with the
//!   kubelet's crash-loop back-off: the first restart at once, then 10 s,
//!   doubling up to 5 minutes.
//! * `simulate.capstan.io/not-ready: "true"`: running but never ready.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

pub const EXIT_AFTER: &str = "simulate.capstan.io/exit-after";
pub const EXIT_CODE: &str = "simulate.capstan.io/exit-code";
pub const NOT_READY: &str = "simulate.capstan.io/not-ready";

/// Upstream's initial and maximum container restart back-off.
const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What a pod's containers do, from its annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub exit_after: Option<Duration>,
    pub exit_code: i32,
    pub ready: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            exit_after: None,
            exit_code: 0,
            ready: true,
        }
    }
}

impl Script {
    /// Reads the annotations; a malformed one is an error naming it.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Result<Script, String> {
        let mut script = Script::default();
        if let Some(text) = annotations.get(EXIT_AFTER) {
            let after = humantime::parse_duration(text).map_err(|e| format!("{EXIT_AFTER}: {text:?}: {e}"))?;
            script.exit_after = Some(after);
        }
        if let Some(text) = annotations.get(EXIT_CODE) {
            script.exit_code = text
                .trim()
                .parse()
                .map_err(|_| format!("{EXIT_CODE}: {text:?}: not an integer exit code"))?;
        }
        if let Some(text) = annotations.get(NOT_READY) {
            let not_ready: bool = text
                .parse()
                .map_err(|_| format!("{NOT_READY}: {text:?}: must be \"true\" or \"false\""))?;
            script.ready = !not_ready;
        }
        Ok(script)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// `spec.restartPolicy`, `Always` when unset as upstream defaults it.
    pub fn parse(text: Option<&str>) -> RestartPolicy {
        match text {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        }
    }

    fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// One finished run of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Termination {
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub exit_code: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running {
        since: Timestamp,
    },
    /// Exited and waiting out the crash-loop back-off of `delay`.
    BackOff {
        delay: Duration,
    },
    /// Exited for good.
    Exited(Termination),
}

/// The containers of a pod at one moment (they all follow the same script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Containers {
    pub state: State,
    pub restart_count: i32,
    /// The run before the current one: upstream's `lastState.terminated`.
    pub last: Option<Termination>,
    /// When the state changes next, if it ever does.
    pub next_change: Option<Timestamp>,
}

/// The state at `now` of containers started at `started`.
pub fn containers_at(script: &Script, policy: RestartPolicy, started: Timestamp, now: Timestamp) -> Containers {
    let mut at = Containers {
        state: State::Running { since: started },
        restart_count: 0,
        last: None,
        next_change: None,
    };
    let Some(run_for) = script.exit_after else {
        return at;
    };
    let mut start = started;
    loop {
        let end = start + signed(run_for);
        if now < end {
            at.state = State::Running { since: start };
            at.next_change = Some(end);
            return at;
        }
        let run = Termination {
            started_at: start,
            finished_at: end,
            exit_code: script.exit_code,
        };
        if !policy.restarts(script.exit_code) {
            at.state = State::Exited(run);
            at.next_change = None;
            return at;
        }
        let delay = backoff(at.restart_count);
        let resume = end + signed(delay);
        at.last = Some(run);
        if now < resume {
            at.state = State::BackOff { delay };
            at.next_change = Some(resume);
            return at;
        }
        at.restart_count += 1;
        start = resume;
    }
}

/// The wait before restart number `restarts + 1`: none for the first, then
/// 10 s doubling up to 5 minutes (upstream's `backOff` per container).
fn backoff(restarts: i32) -> Duration {
    if restarts == 0 {
        return Duration::ZERO;
    }
    let doublings = (restarts - 1).min(16) as u32;
    (INITIAL_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

fn signed(duration: Duration) -> SignedDuration {
    SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn script(exit_after: u64, exit_code: i32) -> Script {
        Script {
            exit_after: Some(Duration::from_secs(exit_after)),
            exit_code,
            ready: true,
        }
    }

    #[test]
    fn annotations_steer_the_script() {
        assert_eq!(Script::from_annotations(&annotations(&[])), Ok(Script::default()));
        let all = annotations(&[(EXIT_AFTER, "1m30s"), (EXIT_CODE, "3"), (NOT_READY, "true")]);
        assert_eq!(
            Script::from_annotations(&all),
            Ok(Script {
                exit_after: Some(Duration::from_secs(90)),
                exit_code: 3,
                ready: false
            })
        );
        let err = Script::from_annotations(&annotations(&[(EXIT_AFTER, "soon")])).unwrap_err();
        assert!(err.starts_with("simulate.capstan.io/exit-after: \"soon\""), "{err}");
        let err = Script::from_annotations(&annotations(&[(EXIT_CODE, "x")])).unwrap_err();
        assert_eq!(err, "simulate.capstan.io/exit-code: \"x\": not an integer exit code");
        assert!(Script::from_annotations(&annotations(&[(NOT_READY, "yes")])).is_err());
    }

    #[test]
    fn without_a_script_containers_run_for_ever() {
        let at = containers_at(&Script::default(), RestartPolicy::Never, t(0), t(1000));
        assert_eq!(at.state, State::Running { since: t(0) });
        assert_eq!((at.restart_count, at.last, at.next_change), (0, None, None));
    }

    #[test]
    fn never_exits_for_good() {
        let running = containers_at(&script(3, 1), RestartPolicy::Never, t(0), t(2));
        assert_eq!(running.state, State::Running { since: t(0) });
        assert_eq!(running.next_change, Some(t(3)));
        let done = containers_at(&script(3, 1), RestartPolicy::Never, t(0), t(3));
        let run = Termination {
            started_at: t(0),
            finished_at: t(3),
            exit_code: 1,
        };
        assert_eq!(done.state, State::Exited(run));
        assert_eq!((done.restart_count, done.last, done.next_change), (0, None, None));
    }

    #[test]
    fn on_failure_restarts_only_failures() {
        let ok = containers_at(&script(3, 0), RestartPolicy::OnFailure, t(0), t(100));
        assert!(matches!(ok.state, State::Exited(Termination { exit_code: 0, .. })));
        let failing = containers_at(&script(3, 2), RestartPolicy::OnFailure, t(0), t(4));
        assert_eq!(failing.state, State::Running { since: t(3) });
        assert_eq!(failing.restart_count, 1);
    }

    #[test]
    fn always_restarts_with_crash_loop_backoff() {
        let s = script(3, 0);
        // Run 0: 0..3, restarted at once; run 1: 3..6, then 10 s back-off; run 2: 16..19, then 20 s.
        let first = containers_at(&s, RestartPolicy::Always, t(0), t(4));
        assert_eq!((first.state, first.restart_count), (State::Running { since: t(3) }, 1));
        assert_eq!(first.last.map(|l| (l.started_at, l.finished_at)), Some((t(0), t(3))));
        let waiting = containers_at(&s, RestartPolicy::Always, t(0), t(10));
        assert_eq!(
            waiting.state,
            State::BackOff {
                delay: Duration::from_secs(10)
            }
        );
        assert_eq!((waiting.restart_count, waiting.next_change), (1, Some(t(16))));
        assert_eq!(waiting.last.map(|l| l.finished_at), Some(t(6)));
        let second = containers_at(&s, RestartPolicy::Always, t(0), t(17));
        assert_eq!(
            (second.state, second.restart_count),
            (State::Running { since: t(16) }, 2)
        );
        assert_eq!(
            containers_at(&s, RestartPolicy::Always, t(0), t(25)).state,
            State::BackOff {
                delay: Duration::from_secs(20)
            }
        );
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let delays: Vec<u64> = (0..8).map(|r| backoff(r).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(i32::MAX), MAX_BACKOFF);
    }
}

//! When a CronJob's Jobs are due: its schedule in its time zone, and
//! upstream's arithmetic over missed start times (`mostRecentScheduleTime`,
//! `nextScheduleTimeDuration`).
//!
//! Five-field schedules and the `@yearly`-style macros are evaluated by
//! `croner` on `jiff` zoned times (DST gaps and folds as cron does them);
//! `@every <duration>`, which upstream's cron library also accepts, is a
//! fixed interval. A schedule without a time zone is read in UTC.

use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Upstream's `nextScheduleDelta`: wake a little after the due time.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);
/// More missed start times than this are not worth enumerating.
const TOO_MANY_MISSED: i64 = 100;

#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<Cron>, TimeZone),
    /// `@every`: a fixed interval of whole seconds (at least one).
    Every(i64),
}

impl Schedule {
    /// Parses `spec` (which may start with `TZ=<zone>` or `CRON_TZ=<zone>`)
    /// in `time_zone`, the CronJob's `spec.timeZone`.
    pub fn parse(spec: &str, time_zone: Option<&str>) -> Result<Schedule, String> {
        let mut spec = spec.trim();
        let mut zone = time_zone.map(str::to_string);
        if let Some(rest) = spec.strip_prefix("TZ=").or_else(|| spec.strip_prefix("CRON_TZ=")) {
            let (name, rest) = rest
                .split_once(' ')
                .ok_or_else(|| format!("unknown time zone {rest}"))?;
            zone = Some(name.to_string());
            spec = rest.trim();
        }
        let zone = match zone.as_deref() {
            None | Some("UTC") => TimeZone::UTC,
            Some(name) => TimeZone::get(name).map_err(|e| e.to_string())?,
        };
        if let Some(interval) = spec.strip_prefix("@every ") {
            let secs = capstan_apimachinery::validation::parse_go_duration(interval.trim())?;
            return Ok(Schedule::Every((secs.floor() as i64).max(1)));
        }
        let spec = if spec.eq_ignore_ascii_case("@midnight") {
            "@daily"
        } else {
            spec
        };
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .sloppy_ranges(true)
            .build();
        let cron = parser.parse(spec).map_err(|e| e.to_string())?;
        Ok(Schedule::Cron(Box::new(cron), zone))
    }

    /// The first activation strictly after `t` (whole seconds), if any.
    pub fn next(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Every(secs) => Timestamp::from_second(t.as_second() + secs).ok(),
            Schedule::Cron(cron, zone) => {
                let zoned = t.to_zoned(zone.clone());
                cron.find_next_occurrence(&zoned, false).ok().map(|z| z.timestamp())
            }
        }
    }

    /// `t` in the schedule's zone as RFC 3339 (what upstream writes into
    /// the scheduled-timestamp annotation).
    pub fn format_rfc3339(&self, t: Timestamp) -> String {
        let zone = match self {
            Schedule::Cron(_, zone) => zone.clone(),
            Schedule::Every(_) => TimeZone::UTC,
        };
        let zoned = t.to_zoned(zone);
        if zoned.offset().seconds() == 0 {
            zoned.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
        } else {
            zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    Many,
}

/// Upstream's `mostRecentScheduleTime`: from the later of the last
/// schedule time (or creation) and, if asked, `now - startingDeadlineSeconds`,
/// the most recent due time not after `now`, and how many were missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recent {
    pub earliest: Timestamp,
    pub most_recent: Option<Timestamp>,
    pub missed: Missed,
}

pub fn most_recent(
    schedule: &Schedule,
    since: Timestamp,
    starting_deadline: Option<i64>,
    now: Timestamp,
) -> Result<Recent, String> {
    let mut earliest = since;
    if let Some(deadline) = starting_deadline {
        earliest = earliest.max(now - SignedDuration::from_secs(deadline));
    }
    let none = |most_recent| Recent {
        earliest,
        most_recent,
        missed: Missed::None,
    };
    let invalid = || "time difference between two schedules is less than 1 second".to_string();
    let t1 = schedule.next(earliest).ok_or_else(invalid)?;
    if now < t1 {
        return Ok(none(None));
    }
    let t2 = schedule.next(t1).ok_or_else(invalid)?;
    if now < t2 {
        return Ok(none(Some(t1)));
    }
    let between = (t2.duration_since(t1).as_millis() as f64 / 1000.0).round() as i64;
    if between < 1 {
        return Err(invalid());
    }
    let elapsed = now.duration_since(t1).as_secs();
    let missed_count = elapsed / between + 1;
    let mut t = schedule.next(t1 + SignedDuration::from_secs((missed_count - 2) * between));
    let mut latest = None;
    while let Some(due) = t.filter(|due| *due <= now) {
        latest = Some(due);
        t = schedule.next(due);
    }
    let missed = if missed_count > TOO_MANY_MISSED {
        Missed::Many
    } else {
        Missed::Few
    };
    Ok(Recent {
        earliest,
        most_recent: latest,
        missed,
    })
}

/// Upstream's `nextScheduleTimeDuration`: how long until the next due
/// time after the last one handled, plus a small delta.
pub fn requeue_after(schedule: &Schedule, since: Timestamp, now: Timestamp) -> Duration {
    let base = match most_recent(schedule, since, None, now) {
        Err(_) => now,
        Ok(Recent {
            most_recent: Some(t), ..
        }) => t,
        Ok(Recent {
            earliest,
            missed: Missed::None,
            ..
        }) => earliest,
        Ok(_) => now,
    };
    let next = schedule.next(base).unwrap_or(now);
    Duration::try_from(next.duration_since(now)).unwrap_or_default() + NEXT_SCHEDULE_DELTA
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn nexts(spec: &str, zone: Option<&str>, from: &str, n: usize) -> Vec<String> {
        let schedule = Schedule::parse(spec, zone).unwrap();
        let mut t = at(from);
        (0..n)
            .map(|_| {
                t = schedule.next(t).unwrap();
                t.to_string()
            })
            .collect()
    }

    #[test]
    fn five_fields_and_macros() {
        assert_eq!(
            nexts("*/15 * * * *", None, "2025-01-01T00:00:00Z", 2),
            ["2025-01-01T00:15:00Z", "2025-01-01T00:30:00Z"]
        );
        assert_eq!(
            nexts("@hourly", None, "2025-01-01T00:30:00Z", 1),
            ["2025-01-01T01:00:00Z"]
        );
        assert_eq!(
            nexts("@midnight", None, "2025-01-01T00:30:00Z", 1),
            ["2025-01-02T00:00:00Z"]
        );
        assert_eq!(
            nexts("@weekly", None, "2025-01-01T00:00:00Z", 1),
            ["2025-01-05T00:00:00Z"]
        );
        assert_eq!(
            nexts("@monthly", None, "2025-01-15T00:00:00Z", 1),
            ["2025-02-01T00:00:00Z"]
        );
        assert_eq!(
            nexts("@annually", None, "2025-01-15T00:00:00Z", 1),
            ["2026-01-01T00:00:00Z"]
        );
        assert_eq!(
            nexts("@every 90s", None, "2025-01-01T00:00:00Z", 2),
            ["2025-01-01T00:01:30Z", "2025-01-01T00:03:00Z"]
        );
    }

    #[test]
    fn day_of_month_and_week_combine_as_cron_does() {
        // One restricted, the other `*`: only the restricted one applies.
        assert_eq!(
            nexts("0 0 * * MON", None, "2025-01-01T00:00:00Z", 1),
            ["2025-01-06T00:00:00Z"]
        );
        // Both restricted: either matches.
        assert_eq!(
            nexts("0 0 3 * MON", None, "2025-01-01T00:00:00Z", 2),
            ["2025-01-03T00:00:00Z", "2025-01-06T00:00:00Z"]
        );
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        assert_eq!(
            nexts("0 9 * * *", Some("Europe/Berlin"), "2025-01-01T00:00:00Z", 1),
            ["2025-01-01T08:00:00Z"]
        );
        assert_eq!(
            nexts("TZ=America/New_York 0 9 * * *", None, "2025-07-01T00:00:00Z", 1),
            ["2025-07-01T13:00:00Z"]
        );
        // 02:30 does not exist in Berlin on 2025-03-30: it runs at the end of the gap, once.
        assert_eq!(
            nexts("30 2 * * *", Some("Europe/Berlin"), "2025-03-29T12:00:00Z", 2),
            ["2025-03-30T01:00:00Z", "2025-03-31T00:30:00Z"]
        );
        // 02:30 happens twice on 2025-10-26: a fixed-time job runs once.
        assert_eq!(
            nexts("30 2 * * *", Some("Europe/Berlin"), "2025-10-25T12:00:00Z", 2),
            ["2025-10-26T00:30:00Z", "2025-10-27T01:30:00Z"]
        );
        assert!(Schedule::parse("* * * * *", Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn annotation_time_is_rfc3339_in_the_zone() {
        let utc = Schedule::parse("* * * * *", None).unwrap();
        assert_eq!(utc.format_rfc3339(at("2025-01-01T10:00:00Z")), "2025-01-01T10:00:00Z");
        let berlin = Schedule::parse("* * * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(
            berlin.format_rfc3339(at("2025-01-01T10:00:00Z")),
            "2025-01-01T11:00:00+01:00"
        );
    }

    #[test]
    fn most_recent_due_time_and_missed_counts() {
        let every_minute = Schedule::parse("* * * * *", None).unwrap();
        let created = at("2025-01-01T10:00:30Z");
        let recent = |now: &str, deadline| most_recent(&every_minute, created, deadline, at(now)).unwrap();
        assert_eq!(recent("2025-01-01T10:00:50Z", None).most_recent, None);
        let one = recent("2025-01-01T10:01:10Z", None);
        assert_eq!(
            (one.most_recent, one.missed),
            (Some(at("2025-01-01T10:01:00Z")), Missed::None)
        );
        let few = recent("2025-01-01T10:05:10Z", None);
        assert_eq!(
            (few.most_recent, few.missed),
            (Some(at("2025-01-01T10:05:00Z")), Missed::Few)
        );
        let many = recent("2025-01-01T13:00:10Z", None);
        assert_eq!(
            (many.most_recent, many.missed),
            (Some(at("2025-01-01T13:00:00Z")), Missed::Many)
        );
        // A starting deadline bounds how far back to look.
        let bounded = recent("2025-01-01T13:00:10Z", Some(30));
        assert_eq!(
            (bounded.most_recent, bounded.missed),
            (Some(at("2025-01-01T13:00:00Z")), Missed::None)
        );
        let never = Schedule::parse("0 0 31 2 *", None).unwrap();
        assert!(most_recent(&never, created, None, at("2025-06-01T00:00:00Z")).is_err());
    }

    #[test]
    fn requeue_lands_just_after_the_next_due_time() {
        let hourly = Schedule::parse("0 * * * *", None).unwrap();
        let after = requeue_after(&hourly, at("2025-01-01T10:00:00Z"), at("2025-01-01T10:59:00Z"));
        assert_eq!(after, Duration::from_secs(60) + NEXT_SCHEDULE_DELTA);
        let after = requeue_after(&hourly, at("2025-01-01T09:00:00Z"), at("2025-01-01T10:30:00Z"));
        assert_eq!(after, Duration::from_secs(1800) + NEXT_SCHEDULE_DELTA);
    }
}

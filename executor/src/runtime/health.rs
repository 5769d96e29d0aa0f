//! HEALTHCHECK: the monitor runs the test in the container (as `exec` does) every interval,
//! with a timeout; `retries` consecutive failures make it unhealthy. Failures during the start
//! period do not count until a first success (docker's rules). The last 5 results are kept.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// docker's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
/// Results kept in `State.Health.Log`, and bytes of output kept per result.
const KEPT_RESULTS: usize = 5;
const KEPT_OUTPUT: usize = 4096;

/// A container's health check (image `HEALTHCHECK` or `--health-*` flags); durations in
/// nanoseconds, 0 for docker's default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["CMD", args…]`, `["CMD-SHELL", command]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub retries: i64,
}

fn duration(nanos: i64, default: Duration) -> Duration {
    if nanos > 0 { Duration::from_nanos(nanos as u64) } else { default }
}

impl Healthcheck {
    /// The command to run, `None` for `NONE` or an empty test.
    pub fn argv(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((kind, args)) if kind == "CMD" && !args.is_empty() => Some(args.to_vec()),
            Some((kind, args)) if kind == "CMD-SHELL" && !args.is_empty() => {
                Some(vec!["/bin/sh".into(), "-c".into(), args.join(" ")])
            }
            _ => None,
        }
    }

    pub fn interval(&self) -> Duration {
        duration(self.interval, DEFAULT_INTERVAL)
    }

    pub fn timeout(&self) -> Duration {
        duration(self.timeout, DEFAULT_TIMEOUT)
    }

    pub fn start_period(&self) -> Duration {
        duration(self.start_period, Duration::ZERO)
    }

    pub fn retries(&self) -> u32 {
        if self.retries > 0 { self.retries as u32 } else { DEFAULT_RETRIES }
    }
}

/// One probe's result (`State.Health.Log[]`); times in nanoseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub start: i64,
    pub end: i64,
    pub exit_code: i32,
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
    pub log: Vec<ProbeResult>,
    /// A probe succeeded since the start: failures count from then on even in the start period.
    pub had_success: bool,
}

impl Health {
    pub fn starting() -> Self {
        Self { status: "starting".into(), ..Self::default() }
    }

    /// Records a probe's result; `in_start_period` when the container started less than its
    /// start period ago.
    pub fn record(&mut self, mut result: ProbeResult, retries: u32, in_start_period: bool) {
        if result.output.len() > KEPT_OUTPUT {
            let mut cut = KEPT_OUTPUT;
            while !result.output.is_char_boundary(cut) {
                cut -= 1;
            }
            result.output.truncate(cut);
        }
        if result.exit_code == 0 {
            self.status = "healthy".into();
            self.failing_streak = 0;
            self.had_success = true;
        } else if !in_start_period || self.had_success {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = "unhealthy".into();
            }
        }
        self.log.push(result);
        let excess = self.log.len().saturating_sub(KEPT_RESULTS);
        self.log.drain(..excess);
    }
}

/// Parses Go durations as docker's flags take them: `30s`, `1m30s`, `500ms`, `1h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += Duration::from_nanos((value * nanos_per) as u64);
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i32) -> ProbeResult {
        ProbeResult { start: 0, end: 0, exit_code: code, output: String::new() }
    }

    #[test]
    fn statuses_follow_docker_rules() {
        let mut health = Health::starting();
        health.record(result(1), 2, true);
        health.record(result(1), 2, true);
        assert_eq!((health.status.as_str(), health.failing_streak), ("starting", 0), "start period");
        health.record(result(0), 2, true);
        assert_eq!(health.status, "healthy");
        health.record(result(1), 2, true);
        assert_eq!((health.status.as_str(), health.failing_streak), ("healthy", 1));
        health.record(result(1), 2, false);
        assert_eq!(health.status, "unhealthy");
        for _ in 0..10 {
            health.record(result(1), 2, false);
        }
        assert_eq!(health.log.len(), 5);
    }

    #[test]
    fn commands_and_durations() {
        let shell = Healthcheck { test: vec!["CMD-SHELL".into(), "curl -f x".into()], ..Default::default() };
        assert_eq!(shell.argv(), Some(vec!["/bin/sh".into(), "-c".into(), "curl -f x".into()]));
        assert_eq!(Healthcheck { test: vec!["NONE".into()], ..Default::default() }.argv(), None);
        assert_eq!(shell.interval(), Duration::from_secs(30));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5x"), None);
    }
}

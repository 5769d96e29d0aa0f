//! `HEALTHCHECK` and Go-style durations.

use std::time::Duration;

use crate::ast::Healthcheck;
use crate::error::ErrorKind;
use crate::flags::Flags;

pub(crate) fn healthcheck(args: &[String], json: bool, flags: &Flags) -> Result<Healthcheck, ErrorKind> {
    let Some(typ) = args.first() else {
        return Err(ErrorKind::ArgumentCount {
            instruction: "HEALTHCHECK".into(),
            expected: "at least one argument",
        });
    };
    let typ = typ.to_uppercase();
    let rest = &args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err(ErrorKind::HealthcheckNoneArguments);
        }
        return Ok(Healthcheck::None);
    }
    if typ != "CMD" {
        return Err(ErrorKind::HealthcheckType(args[0].clone()));
    }
    let command: Vec<String> = if json { rest.to_vec() } else { vec![rest.join(" ")] };
    if command.is_empty() || (!json && command[0].is_empty()) {
        return Err(ErrorKind::HealthcheckMissingCommand);
    }
    let mut test = vec![if json { "CMD".to_string() } else { "CMD-SHELL".to_string() }];
    test.extend(command);
    let retries = match flags.string("retries") {
        None => None,
        Some(value) if value.is_empty() => None,
        Some(value) => {
            let parsed: i64 = value.parse().ok().filter(|v| i32::try_from(*v).is_ok()).ok_or_else(|| {
                ErrorKind::InvalidFlagValue {
                    flag: "--retries".into(),
                    instruction: "HEALTHCHECK".into(),
                    value: value.clone(),
                    reason: "not a 32-bit integer".into(),
                }
            })?;
            if parsed < 0 {
                return Err(ErrorKind::InvalidFlagValue {
                    flag: "--retries".into(),
                    instruction: "HEALTHCHECK".into(),
                    value,
                    reason: "cannot be negative".into(),
                });
            }
            u32::try_from(parsed).ok()
        }
    };
    Ok(Healthcheck::Cmd {
        test,
        interval: interval(flags, "interval")?,
        timeout: interval(flags, "timeout")?,
        start_period: interval(flags, "start-period")?,
        start_interval: interval(flags, "start-interval")?,
        retries,
    })
}

fn interval(flags: &Flags, name: &str) -> Result<Option<Duration>, ErrorKind> {
    let Some(value) = flags.string(name) else { return Ok(None) };
    if value.is_empty() {
        return Ok(None);
    }
    let invalid = |reason: &str| ErrorKind::InvalidFlagValue {
        flag: format!("--{name}"),
        instruction: "HEALTHCHECK".into(),
        value: value.clone(),
        reason: reason.to_string(),
    };
    let nanos = parse_go_duration(&value).ok_or_else(|| invalid("not a duration such as 30s or 1m30s"))?;
    if nanos == 0 {
        return Ok(None);
    }
    if nanos < 1_000_000 {
        return Err(invalid("cannot be less than 1ms"));
    }
    Ok(Some(Duration::from_nanos(nanos.unsigned_abs())))
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub fn parse_go_duration(text: &str) -> Option<i64> {
    let (negative, parts) = split_duration(text)?;
    let mut total: u128 = 0;
    for (number, unit) in parts {
        let unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            _ => 3_600_000_000_000,
        };
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        let int_value: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let mut value = int_value.checked_mul(unit)?;
        if !frac.is_empty() {
            let digits = &frac[..frac.len().min(30)];
            let scale = 10f64.powi(digits.len() as i32);
            let f: f64 = digits.parse::<f64>().ok()?;
            value = value.checked_add((f * (unit as f64 / scale)) as u128)?;
        }
        total = total.checked_add(value)?;
    }
    let limit = if negative { 1u128 << 63 } else { (1u128 << 63) - 1 };
    if total > limit {
        return None;
    }
    let magnitude = i128::try_from(total).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

type DurationParts<'a> = (bool, Vec<(&'a str, &'a str)>);

/// Splits a duration into its sign and (number, unit) parts as the grammar's `duration` rule
/// does. Hand-written because HEALTHCHECK flags are on the hot path; the unit test
/// `duration_split_agrees_with_the_grammar` checks it against the pest rule.
fn split_duration(text: &str) -> Option<DurationParts<'_>> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some((negative, Vec::new()));
    }
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let int = digits(rest);
        let mut len = int;
        if rest[len..].starts_with('.') {
            let frac = digits(&rest[len + 1..]);
            if int == 0 && frac == 0 {
                return None;
            }
            len += 1 + frac;
        } else if int == 0 {
            return None;
        }
        let (number, after) = rest.split_at(len);
        let unit =
            ["ns", "us", "µs", "μs", "ms", "s", "m", "h"].into_iter().find(|u| after.starts_with(u))?;
        parts.push((number, unit));
        rest = &after[unit.len()..];
    }
    if parts.is_empty() {
        return None;
    }
    Some((negative, parts))
}

/// [`split_duration`] with the pest grammar (the reference).
#[cfg(test)]
fn split_duration_pest(text: &str) -> Option<DurationParts<'_>> {
    use crate::grammar::{Rule, parse_rule};
    let pair = parse_rule(Rule::duration, text)?;
    let mut negative = false;
    let mut parts = Vec::new();
    for part in pair.into_inner() {
        match part.as_rule() {
            Rule::duration_sign => negative = part.as_str() == "-",
            Rule::duration_part => {
                let mut inner = part.into_inner();
                parts.push((inner.next()?.as_str(), inner.next()?.as_str()));
            }
            _ => {}
        }
    }
    Some((negative, parts))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn duration_split_agrees_with_the_grammar() {
        let cases = [
            "",
            "0",
            "-0",
            "+0",
            "00",
            "0s",
            "1",
            "s",
            "1s",
            "1.5h",
            "-2m3s",
            "300ms",
            ".5s",
            "1.s",
            ".s",
            "1x",
            "1s2",
            "1µs",
            "2μs",
            "3us",
            "4ns",
            "1h2m3s4ms5us6ns",
            "1msm",
            "1ms5",
            "+-1s",
            "--1s",
            "1..5s",
            "0.000000001s",
            "99999999999999999999h",
            "1e3s",
            "1 s",
            "٣s",
        ];
        for text in cases {
            assert_eq!(split_duration(text), split_duration_pest(text), "{text:?}");
        }
        for text in crate::raw::tests::all_strings(&['1', '0', '.', 's', 'm', 'h', 'n', '-', 'µ'], 5) {
            assert_eq!(split_duration(&text), split_duration_pest(&text), "{text:?}");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("-2ms"), Some(-2_000_000));
        assert_eq!(parse_go_duration("300us"), Some(300_000));
        assert_eq!(parse_go_duration("9999999999h"), None);
        assert_eq!(parse_go_duration("5"), None);
    }
}

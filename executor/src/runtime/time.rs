//! RFC 3339 timestamps as Go's `time.RFC3339Nano` writes them (docker's log and state times).

/// Formats nanoseconds since the epoch as `2024-05-01T12:00:00.123456789Z`, trailing zeros
/// of the fraction dropped (Go's RFC3339Nano; chrono's fixed-width forms keep them).
pub fn rfc3339_nano(nanos: i64) -> String {
    let text =
        chrono::DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let body = text.trim_end_matches('Z').trim_end_matches('0').trim_end_matches('.');
    format!("{body}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_nano(1_700_000_000_120_000_000), "2023-11-14T22:13:20.12Z");
        assert_eq!(rfc3339_nano(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
    }
}

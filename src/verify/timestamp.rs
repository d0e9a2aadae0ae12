//! Replay windows for schemes that sign a timestamp. `now` is a parameter so tests pick their own.

use std::time::Duration;

use time::OffsetDateTime;

use super::VerifyError;

/// How far a signed timestamp may be from `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Oldest accepted age. Sized to the provider's retry horizon plus clock skew.
    pub max_age: Duration,
    /// How far in the future a sender's clock may run.
    pub max_skew: Duration,
}

impl Window {
    pub fn check(&self, signed_at: OffsetDateTime, now: OffsetDateTime) -> Result<(), VerifyError> {
        // Checked: a window wider than time's range (a config choice, not a request's) means
        // "no bound on that side" instead of an overflow panic on every request.
        if now
            .checked_add(time::Duration::try_from(self.max_skew).unwrap_or(time::Duration::MAX))
            .is_some_and(|latest| signed_at > latest)
        {
            return Err(VerifyError::TimestampInFuture);
        }
        if now
            .checked_sub(time::Duration::try_from(self.max_age).unwrap_or(time::Duration::MAX))
            .is_some_and(|earliest| signed_at < earliest)
        {
            return Err(VerifyError::TimestampTooOld);
        }
        Ok(())
    }
}

/// How a sender writes the timestamp it signs. The signed text is always the text as sent; this
/// only says how to read the time out of it for the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// Seconds since the epoch (Stripe, Slack, Standard Webhooks).
    #[default]
    Unix,
    /// Milliseconds since the epoch (HubSpot).
    UnixMs,
    /// RFC 3339 text (Twitch, Box, Zendesk).
    Rfc3339,
}

impl TimestampFormat {
    pub fn parse(self, text: &str) -> Result<OffsetDateTime, VerifyError> {
        match self {
            TimestampFormat::Unix => parse_unix_seconds(text),
            TimestampFormat::UnixMs => text
                .trim()
                .parse::<i64>()
                .ok()
                .and_then(|ms| OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok())
                .ok_or(VerifyError::MalformedTimestamp),
            TimestampFormat::Rfc3339 => {
                OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
                    .map_err(|_| VerifyError::MalformedTimestamp)
            }
        }
    }
}

/// Parses a Unix timestamp in seconds, as Stripe and Standard Webhooks send it.
pub fn parse_unix_seconds(text: &str) -> Result<OffsetDateTime, VerifyError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or(VerifyError::MalformedTimestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_reads_its_own_text_only() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(TimestampFormat::Unix.parse("1700000000"), Ok(at));
        assert_eq!(TimestampFormat::UnixMs.parse("1700000000999"), Ok(at));
        assert_eq!(
            TimestampFormat::Rfc3339.parse("2023-11-14T22:13:20Z"),
            Ok(at)
        );
        assert_eq!(
            TimestampFormat::Rfc3339.parse("1700000000"),
            Err(VerifyError::MalformedTimestamp)
        );
        assert_eq!(
            TimestampFormat::UnixMs.parse("-"),
            Err(VerifyError::MalformedTimestamp)
        );
    }

    #[test]
    fn an_absurdly_wide_window_bounds_nothing_instead_of_panicking() {
        let window = Window {
            max_age: Duration::from_secs(u64::MAX),
            max_skew: Duration::from_secs(u64::MAX),
        };
        let now = OffsetDateTime::now_utc();
        assert_eq!(window.check(OffsetDateTime::UNIX_EPOCH, now), Ok(()));
        assert_eq!(window.check(now + time::Duration::days(3650), now), Ok(()));
    }

    #[test]
    fn window_accepts_inside_and_rejects_both_sides() {
        let w = Window {
            max_age: Duration::from_secs(300),
            max_skew: Duration::from_secs(60),
        };
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(w.check(now - Duration::from_secs(299), now), Ok(()));
        assert_eq!(w.check(now + Duration::from_secs(59), now), Ok(()));
        assert_eq!(
            w.check(now - Duration::from_secs(301), now),
            Err(VerifyError::TimestampTooOld)
        );
        assert_eq!(
            w.check(now + Duration::from_secs(61), now),
            Err(VerifyError::TimestampInFuture)
        );
    }

    #[test]
    fn unix_seconds_parse_or_fail_cleanly() {
        assert_eq!(
            parse_unix_seconds("1700000000").unwrap().unix_timestamp(),
            1_700_000_000
        );
        assert_eq!(
            parse_unix_seconds("x"),
            Err(VerifyError::MalformedTimestamp)
        );
        assert_eq!(
            parse_unix_seconds("99999999999999999999"),
            Err(VerifyError::MalformedTimestamp)
        );
    }
}

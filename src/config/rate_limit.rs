//! A rate limit per principal (`rate` and `burst` in `[authorization]`
//! for everyone, and in `[authorization.roles.NAME]` for a role).

use std::ops::Range;

use toml::Spanned;

use super::bounded::bounded;
use crate::error::Error;

/// The most messages a second a limit may name, and the largest burst.
pub const MAX_RATE: u64 = 1 << 30;

/// A token bucket: `per_second` messages a second on average, and up to
/// `burst` at once after a quiet spell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Messages a second, 1 to [`MAX_RATE`].
    pub per_second: u64,
    /// Messages at once, 1 to [`MAX_RATE`].
    pub burst: u64,
}

impl RateLimit {
    /// `per_second` messages a second, `burst` at once (each clamped to
    /// 1..=[`MAX_RATE`]).
    ///
    /// ```
    /// use mcp_engine::config::RateLimit;
    /// let limit = RateLimit::new(100, 0);
    /// assert_eq!((limit.per_second, limit.burst), (100, 1));
    /// ```
    pub fn new(per_second: u64, burst: u64) -> RateLimit {
        RateLimit {
            per_second: per_second.clamp(1, MAX_RATE),
            burst: burst.clamp(1, MAX_RATE),
        }
    }
}

/// The limit of `rate` and `burst` (the burst defaults to the rate: a
/// second's worth); `None` without a rate.
pub(super) fn rate_limit(
    at: &(impl Fn(Option<Range<usize>>, &str) -> Error + ?Sized),
    rate: Option<Spanned<u64>>,
    burst: Option<Spanned<u64>>,
    prefix: &str,
) -> Result<Option<RateLimit>, Error> {
    let Some(rate) = rate else {
        return match burst {
            None => Ok(None),
            Some(burst) => Err(at(
                Some(burst.span()),
                &format!("`{prefix}burst`: needs `{prefix}rate`"),
            )),
        };
    };
    let per_second = bounded(
        at,
        Some(rate),
        &format!("{prefix}rate"),
        1..=MAX_RATE,
        "messages a second",
        1,
    )?;
    let burst = bounded(
        at,
        burst,
        &format!("{prefix}burst"),
        1..=MAX_RATE,
        "messages",
        per_second,
    )?;
    Ok(Some(RateLimit { per_second, burst }))
}

#[cfg(test)]
mod tests {
    use super::RateLimit;
    use crate::config::Config;

    #[test]
    fn limits_are_read_for_everyone_and_per_role() {
        let config = Config::from_toml(
            "[authorization]\nrate = 100\nburst = 50\n\
             [authorization.roles.reader]\nallow = [\"*:read\"]\nrate = 5\n\
             [authorization.roles.writer]\nallow = [\"*:*\"]\n",
            "test",
        )
        .unwrap();
        let authorization = &config.authorization;
        assert_eq!(authorization.rate_limit, Some(RateLimit::new(100, 50)));
        // The burst defaults to a second's worth.
        assert_eq!(
            authorization.roles["reader"].rate_limit,
            Some(RateLimit::new(5, 5))
        );
        assert_eq!(authorization.roles["writer"].rate_limit, None);
        assert_eq!(
            Config::from_toml("", "test")
                .unwrap()
                .authorization
                .rate_limit,
            None
        );
    }

    #[test]
    fn a_burst_without_a_rate_and_a_rate_of_zero_are_refused() {
        for (text, says) in [
            (
                "[authorization.roles.r]\nburst = 5\n",
                "`authorization.roles.r.burst`: needs `authorization.roles.r.rate`",
            ),
            (
                "[authorization]\nrate = 0\n",
                "`authorization.rate`: must be between 1 and 1073741824",
            ),
            (
                "[authorization]\nrate = 10\nburst = 0\n",
                "`authorization.burst`: must be between 1",
            ),
        ] {
            let refused = Config::from_toml(text, "test").unwrap_err();
            assert!(refused.message().contains(says), "{text}: {refused}");
        }
    }
}

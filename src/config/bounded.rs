//! Reading a number that must lie in a range, with the config file's
//! position in the error when it does not.

use std::ops::{Range, RangeInclusive};

use toml::Spanned;

use crate::error::Error;

/// A number in `range`, or `default` if absent.
pub(super) fn bounded(
    at: &(impl Fn(Option<Range<usize>>, &str) -> Error + ?Sized),
    value: Option<Spanned<u64>>,
    name: &str,
    range: RangeInclusive<u64>,
    unit: &str,
    default: u64,
) -> Result<u64, Error> {
    match value {
        None => Ok(default),
        Some(v) if range.contains(v.get_ref()) => Ok(v.into_inner()),
        Some(v) => Err(at(
            Some(v.span()),
            &format!(
                "`{name}`: must be between {} and {} {unit}",
                range.start(),
                range.end()
            ),
        )),
    }
}

//! `[audit]`: the audit log, one JSON line per security decision worth
//! keeping (see the `audit` module). On when the section is present.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::bounded::bounded;
use crate::error::Error;

/// Where the audit log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditOutput {
    /// Standard error (`file = "stderr"`).
    Stderr,
    /// A file, appended to (created if missing) and reopened on SIGHUP,
    /// for logrotate.
    File(PathBuf),
}

/// The audit log's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditConfig {
    /// Where the lines go.
    pub output: AuditOutput,
    /// Identical refusals from one peer (same code, principal and command)
    /// within this many seconds are one line, then one line with their
    /// count (default 10).
    pub collapse_secs: u64,
    /// Events waiting for the writer at most (default 4096); past it they
    /// are dropped and counted.
    pub queue: u64,
}

impl AuditConfig {
    /// The log to `output`, with the default interval and queue.
    pub fn to(output: AuditOutput) -> AuditConfig {
        AuditConfig {
            output,
            collapse_secs: 10,
            queue: 4096,
        }
    }
}

/// The section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditFile {
    file: Spanned<String>,
    collapse_secs: Option<Spanned<u64>>,
    queue: Option<Spanned<u64>>,
}

pub(super) fn audit_config(
    file: Option<AuditFile>,
    at: &impl Fn(Option<Range<usize>>, &str) -> Error,
    base: &Path,
) -> Result<Option<AuditConfig>, Error> {
    let Some(file) = file else {
        return Ok(None);
    };
    let defaults = AuditConfig::to(AuditOutput::Stderr);
    let output = match file.file.get_ref().as_str() {
        "stderr" => AuditOutput::Stderr,
        "" => {
            return Err(at(
                Some(file.file.span()),
                "`audit.file`: a path, or \"stderr\"",
            ));
        }
        path => AuditOutput::File(base.join(path)),
    };
    Ok(Some(AuditConfig {
        output,
        collapse_secs: bounded(
            at,
            file.collapse_secs,
            "audit.collapse_secs",
            1..=3600,
            "seconds",
            defaults.collapse_secs,
        )?,
        queue: bounded(
            at,
            file.queue,
            "audit.queue",
            64..=1 << 20,
            "events",
            defaults.queue,
        )?,
    }))
}

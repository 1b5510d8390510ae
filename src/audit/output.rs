//! Where audit lines go: standard error, or a file appended to and
//! reopened on request (logrotate moves the file, SIGHUP reopens it).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};

use crate::config::AuditOutput;
use crate::error::{Code, Error};

/// The open output.
#[derive(Debug)]
pub enum Output {
    /// Standard error.
    Stderr,
    /// A file, appended to.
    File(File),
}

impl Output {
    /// Opens `output` (a file is created if missing, `0600`, and appended
    /// to).
    pub fn open(output: &AuditOutput) -> Result<Output, Error> {
        match output {
            AuditOutput::Stderr => Ok(Output::Stderr),
            AuditOutput::File(path) => {
                let mut options = OpenOptions::new();
                options.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                options.open(path).map(Output::File).map_err(|e| {
                    Error::new(
                        Code::ConfigurationError,
                        format!("`audit.file`: cannot open {}: {e}", path.display()),
                    )
                })
            }
        }
    }

    /// Writes `lines` whole.
    pub fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        match self {
            Output::Stderr => io::stderr().lock().write_all(lines),
            Output::File(file) => file.write_all(lines),
        }
    }
}

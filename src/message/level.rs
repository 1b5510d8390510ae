//! [`SecurityLevel`]: how much protection a message carries.

use std::fmt;

/// The protection a message claims (docs/protocol.md section 3), weakest first.
///
/// Levels are ordered: `Low < Standard < High < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurityLevel {
    /// No protection; accepted only where the configuration allows it.
    Low,
    /// A valid auth token.
    Standard,
    /// A valid auth token and signature.
    High,
    /// A valid auth token and signature, and an encrypted payload.
    Critical,
}

impl SecurityLevel {
    /// Every level, weakest first.
    pub const ALL: [SecurityLevel; 4] = [
        SecurityLevel::Low,
        SecurityLevel::Standard,
        SecurityLevel::High,
        SecurityLevel::Critical,
    ];

    /// The name used on the wire, e.g. `High`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SecurityLevel::Low => "Low",
            SecurityLevel::Standard => "Standard",
            SecurityLevel::High => "High",
            SecurityLevel::Critical => "Critical",
        }
    }

    /// The level with this exact wire name.
    pub fn from_name(name: &str) -> Option<SecurityLevel> {
        SecurityLevel::ALL.into_iter().find(|l| l.as_str() == name)
    }
}

impl fmt::Display for SecurityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

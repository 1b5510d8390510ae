//! The security levels (docs/protocol.md section 3) as one table: what each level
//! requires of a message.

use crate::message::SecurityLevel;

/// The protections a level requires. A protection present beyond what the
/// level requires is verified all the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requirements {
    /// A valid `auth_token`.
    pub token: bool,
    /// A valid `signature`.
    pub signature: bool,
    /// An encrypted payload.
    pub encryption: bool,
}

/// What `level` requires.
pub const fn requirements(level: SecurityLevel) -> Requirements {
    let (token, signature, encryption) = match level {
        SecurityLevel::Low => (false, false, false),
        SecurityLevel::Standard => (true, false, false),
        SecurityLevel::High => (true, true, false),
        SecurityLevel::Critical => (true, true, true),
    };
    Requirements {
        token,
        signature,
        encryption,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_requires_everything_the_one_below_does() {
        let count = |r: Requirements| {
            [r.token, r.signature, r.encryption]
                .iter()
                .filter(|&&b| b)
                .count()
        };
        for (n, level) in SecurityLevel::ALL.into_iter().enumerate() {
            assert_eq!(count(requirements(level)), n);
        }
    }
}

//! The protocol's error table (docs/protocol.md section 7) as types.
//!
//! Every refusal the engine gives a peer and every failure of its own is an
//! [`Error`]: a [`Code`] (one of the 18 of the table), a human message, and
//! what follows from the code: its [`Category`] and whether a retry may help.
//! Category and retryability are derived from the code, never stored, so they
//! cannot disagree with it.

use std::borrow::Cow;
use std::fmt;

/// The three families of error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    /// The message broke the protocol: format, envelope rules, routing.
    Protocol,
    /// Authentication, authorization, signatures, encryption, replay.
    Security,
    /// The engine itself: overload, timeouts, configuration, I/O.
    System,
}

impl Category {
    /// The name used on the wire (`protocol`, `security`, `system`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Protocol => "protocol",
            Category::Security => "security",
            Category::System => "system",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! codes {
    ($( $variant:ident => $name:literal, $category:ident, $retryable:literal, $summary:literal; )*) => {
        /// One of the 18 error codes of docs/protocol.md section 7.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $(
                #[doc = $summary]
                $variant,
            )*
        }

        impl Code {
            /// Every code, in the order of the protocol's table.
            pub const ALL: [Code; 18] = [$(Code::$variant),*];

            /// The code's name on the wire, e.g. `invalid_format`.
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// The family the code belongs to.
            pub const fn category(self) -> Category {
                match self { $(Code::$variant => Category::$category,)* }
            }

            /// Whether the same message may succeed if sent again later.
            pub const fn is_retryable(self) -> bool {
                match self { $(Code::$variant => $retryable,)* }
            }

            /// A fixed one-line description; the only text a security error
            /// carries on the wire.
            pub const fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }

            /// The code with this wire name, if there is one.
            pub fn from_name(name: &str) -> Option<Code> {
                match name { $($name => Some(Code::$variant),)* _ => None }
            }
        }
    };
}

codes! {
    InvalidFormat => "invalid_format", Protocol, false, "the message is not well-formed";
    ValidationFailed => "validation_failed", Protocol, false, "the message breaks an envelope rule";
    MessageTooLarge => "message_too_large", Protocol, false, "the message exceeds the size limit";
    UnsupportedVersion => "unsupported_version", Protocol, false, "the protocol version is not supported";
    HandlerNotFound => "handler_not_found", Protocol, false, "no handler for the command";
    StateError => "state_error", Protocol, false, "the message does not fit the current state";
    AuthenticationFailed => "authentication_failed", Security, false, "authentication failed";
    TokenExpired => "token_expired", Security, false, "the token has expired";
    AccessDenied => "access_denied", Security, false, "access denied";
    SignatureInvalid => "signature_invalid", Security, false, "the signature is invalid";
    EncryptionFailed => "encryption_failed", Security, false, "the payload could not be decrypted";
    ReplayDetected => "replay_detected", Security, false, "the message was already received";
    ResourceExhausted => "resource_exhausted", System, true, "a capacity limit was reached";
    Timeout => "timeout", System, true, "the handler did not answer in time";
    Unavailable => "unavailable", System, true, "the service is unavailable";
    ConfigurationError => "configuration_error", System, false, "the configuration is invalid";
    NetworkError => "network_error", System, true, "a network error occurred";
    InternalError => "internal_error", System, false, "an internal error occurred";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of the protocol's table: a code and a message.
///
/// The message explains the fault to a human. For codes of the security
/// category it stays on this side of the wire (for logs); the wire only ever
/// carries the code's fixed [`Code::summary`], so that a refusal tells an
/// attacker no more than its code (docs/protocol.md section 7). Messages must never
/// contain key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: Code,
    message: Cow<'static, str>,
}

impl Error {
    /// An error with the given code and message.
    pub fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Error {
        Error {
            code,
            message: message.into(),
        }
    }

    /// The error code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The code's category.
    pub fn category(&self) -> Category {
        self.code.category()
    }

    /// Whether a retry may succeed.
    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }

    /// The full message, for logs and operators.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message a peer may see: the full message for protocol and system
    /// errors, the code's fixed summary for security errors.
    pub fn wire_message(&self) -> &str {
        match self.code.category() {
            Category::Security => self.code.summary(),
            Category::Protocol | Category::System => &self.message,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_eighteen_distinct_codes_with_their_categories() {
        let names: std::collections::HashSet<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), 18);
        let count = |cat| Code::ALL.iter().filter(|c| c.category() == cat).count();
        assert_eq!(count(Category::Protocol), 6);
        assert_eq!(count(Category::Security), 6);
        assert_eq!(count(Category::System), 6);
        for code in Code::ALL {
            assert_eq!(Code::from_name(code.as_str()), Some(code));
        }
        assert_eq!(Code::from_name("Invalid_Format"), None);
    }

    #[test]
    fn only_the_four_transient_codes_are_retryable() {
        let retryable: Vec<_> = Code::ALL
            .iter()
            .filter(|c| c.is_retryable())
            .map(|c| c.as_str())
            .collect();
        assert_eq!(
            retryable,
            [
                "resource_exhausted",
                "timeout",
                "unavailable",
                "network_error"
            ]
        );
    }
}

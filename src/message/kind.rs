//! [`MessageType`]: what a message is, and [`TypeKey`]: how it said so.

use std::fmt;

/// The four kinds of message (the envelope's `type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Asks the receiver to do something; answered by a Response or an Error.
    Command,
    /// The successful answer to a Command.
    Response,
    /// A notification for every subscriber; answered only if it asks for an ack.
    Event,
    /// A refusal or failure, answering a message that could not be served.
    Error,
}

impl MessageType {
    /// Every kind, in the protocol's order.
    pub const ALL: [MessageType; 4] = [
        MessageType::Command,
        MessageType::Response,
        MessageType::Event,
        MessageType::Error,
    ];

    /// The name used on the wire, e.g. `Command`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageType::Command => "Command",
            MessageType::Response => "Response",
            MessageType::Event => "Event",
            MessageType::Error => "Error",
        }
    }

    /// The kind with this exact wire name.
    pub fn from_name(name: &str) -> Option<MessageType> {
        MessageType::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which key carried the type: `type`, or the Rust field name `type_` of docs/seed-specification.md,
/// which docs/protocol.md accepts as an alias.
///
/// Kept so that a message converts between codecs without changing its
/// signed form: the signature covers the envelope as sent, key names included.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TypeKey {
    /// `"type"`, what this engine writes.
    #[default]
    Type,
    /// `"type_"`.
    TypeUnderscore,
}

impl TypeKey {
    /// The JSON key.
    pub const fn as_str(self) -> &'static str {
        match self {
            TypeKey::Type => "type",
            TypeKey::TypeUnderscore => "type_",
        }
    }
}

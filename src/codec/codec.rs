//! [`Codec`]: which encoding a frame body uses (the frame's codec byte).

/// The encoding of a frame body, named by the byte after the frame length
/// (docs/protocol.md section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// `0x4A` (`J`): one JSON envelope, UTF-8.
    Json,
    /// `0x52` (`R`): the binary (rkyv) envelope.
    Binary,
}

impl Codec {
    /// The codec byte on the wire.
    pub const fn byte(self) -> u8 {
        match self {
            Codec::Json => b'J',
            Codec::Binary => b'R',
        }
    }

    /// The codec a byte names, if any.
    pub const fn from_byte(byte: u8) -> Option<Codec> {
        match byte {
            b'J' => Some(Codec::Json),
            b'R' => Some(Codec::Binary),
            _ => None,
        }
    }
}

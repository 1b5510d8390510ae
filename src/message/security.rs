//! [`SecurityMetadata`] and [`EncryptionInfo`]: the envelope's `security` object.
//!
//! Generic over the string type: `String` in the owned model, `&str` in the
//! borrowed view, so both read the same way.

use super::{Field, SecurityLevel};

/// The `security` object of an envelope (docs/protocol.md section 3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecurityMetadata<S = String> {
    /// The protection the message claims.
    pub security_level: SecurityLevel,
    /// How the payload is encrypted, for `Critical` messages.
    pub encryption_info: Field<EncryptionInfo<S>>,
    /// `kid:b64u(HMAC-SHA256)` over the canonical envelope (section 5).
    pub signature: Field<S>,
    /// A compact JWS (section 4).
    pub auth_token: Field<S>,
}

impl<S> SecurityMetadata<S> {
    /// Metadata of the given level with every optional field absent.
    pub fn new(security_level: SecurityLevel) -> SecurityMetadata<S> {
        SecurityMetadata {
            security_level,
            encryption_info: Field::Absent,
            signature: Field::Absent,
            auth_token: Field::Absent,
        }
    }
}

impl<S: AsRef<str>> SecurityMetadata<S> {
    /// A copy borrowing the strings.
    pub fn borrowed(&self) -> SecurityMetadata<&str> {
        SecurityMetadata {
            security_level: self.security_level,
            encryption_info: self.encryption_info.as_ref().map(EncryptionInfo::borrowed),
            signature: self.signature.as_ref().map(AsRef::as_ref),
            auth_token: self.auth_token.as_ref().map(AsRef::as_ref),
        }
    }

    /// An owned copy.
    pub fn to_owned_metadata(&self) -> SecurityMetadata<String> {
        let owned = |s: &S| s.as_ref().to_owned();
        SecurityMetadata {
            security_level: self.security_level,
            encryption_info: self
                .encryption_info
                .as_ref()
                .map(EncryptionInfo::to_owned_info),
            signature: self.signature.as_ref().map(owned),
            auth_token: self.auth_token.as_ref().map(owned),
        }
    }
}

/// The one encryption algorithm the protocol defines (docs/protocol.md
/// section 6), as `encryption_info.algorithm` names it.
pub const ENCRYPTION_ALGORITHM: &str = "AES-256-GCM";

/// The `encryption_info` object (docs/protocol.md section 6).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EncryptionInfo<S = String> {
    /// Always `AES-256-GCM` in protocol version 1.
    pub algorithm: S,
    /// The keyring id of the payload key.
    pub key_id: S,
    /// `b64u` of the 12-byte nonce.
    pub nonce: S,
}

impl<S: AsRef<str>> EncryptionInfo<S> {
    /// A copy borrowing the strings.
    pub fn borrowed(&self) -> EncryptionInfo<&str> {
        EncryptionInfo {
            algorithm: self.algorithm.as_ref(),
            key_id: self.key_id.as_ref(),
            nonce: self.nonce.as_ref(),
        }
    }

    /// An owned copy.
    pub fn to_owned_info(&self) -> EncryptionInfo<String> {
        EncryptionInfo {
            algorithm: self.algorithm.as_ref().to_owned(),
            key_id: self.key_id.as_ref().to_owned(),
            nonce: self.nonce.as_ref().to_owned(),
        }
    }
}

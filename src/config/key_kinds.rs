//! What a key is for, and which algorithm signs a token: the words of a
//! `[[security.keys]]` entry, read by the config and used by the keyring.

/// What a key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyUse {
    /// Verifying (and, with the secret or private key, issuing) auth tokens.
    Jwt,
    /// HMAC-SHA256 envelope signatures (docs/protocol.md section 5).
    Signing,
    /// AES-256-GCM payload encryption (docs/protocol.md section 6).
    Encryption,
}

impl KeyUse {
    /// The name used in config files: `jwt`, `signing`, `encryption`.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyUse::Jwt => "jwt",
            KeyUse::Signing => "signing",
            KeyUse::Encryption => "encryption",
        }
    }

    /// The use with this config name.
    pub fn from_name(name: &str) -> Option<KeyUse> {
        [KeyUse::Jwt, KeyUse::Signing, KeyUse::Encryption]
            .into_iter()
            .find(|u| u.as_str() == name)
    }
}

/// The token signature algorithms the engine accepts (docs/protocol.md section 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret.
    Hs256,
    /// Ed25519.
    EdDsa,
}

impl JwtAlgorithm {
    /// The header's `alg` value: `HS256` or `EdDSA`.
    pub const fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// The algorithm with this exact `alg` value (case matters: `none`,
    /// `hs256` and every other name are refused).
    pub fn from_name(name: &str) -> Option<JwtAlgorithm> {
        match name {
            "HS256" => Some(JwtAlgorithm::Hs256),
            "EdDSA" => Some(JwtAlgorithm::EdDsa),
            _ => None,
        }
    }
}

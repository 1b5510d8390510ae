//! The baseline's checks, written as a Rust user would write them with
//! serde_json and ring: the envelope parsed into a `serde_json::Value` and
//! a derived struct, the token split and verified by hand (jsonwebtoken 11
//! has no ring back end), the signature over the envelope re-serialised
//! with sorted keys (which is RFC 8785 for these envelopes: ASCII keys, no
//! floats), AES-256-GCM with ring, a replay map behind a mutex: of ids,
//! and of replay streams (docs/protocol.md section 7a) with the same window
//! of 1024 numbers as the engine's, so that neither side remembers more
//! than the other.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use mcp_engine::client::Credentials;
use mcp_engine::{Code, Config, Error};

/// The envelope's fields, as serde derives them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Envelope {
    version: Option<String>,
    pub(super) id: String,
    #[serde(rename = "type")]
    pub(super) kind: String,
    payload: Value,
    metadata: Option<Map<String, Value>>,
    security: Security,
    timestamp: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Security {
    security_level: String,
    encryption_info: Option<EncryptionInfo>,
    signature: Option<String>,
    auth_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EncryptionInfo {
    algorithm: String,
    key_id: String,
    nonce: String,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    iss: Option<String>,
    aud: Option<String>,
    jti: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// A message past validation: the parsed tree (for the signature) and the
/// typed fields.
pub(super) struct Parsed {
    tree: Value,
    pub(super) envelope: Envelope,
    level: u8,
}

/// A message past authentication.
pub(super) struct Authenticated {
    pub(super) parsed: Parsed,
    roles: Vec<String>,
    signing_kid: Option<String>,
}

/// Keys, rules and state the baseline checks with.
pub(super) struct Checks {
    jwt: HashMap<String, hmac::Key>,
    signing: HashMap<String, hmac::Key>,
    encryption: HashMap<String, LessSafeKey>,
    min_level: u8,
    leeway: i64,
    issuer: Option<String>,
    audience: Option<String>,
    revoked: HashSet<String>,
    replay: Mutex<HashMap<(String, String), i64>>,
    replay_capacity: usize,
    streams: Mutex<HashMap<(String, String), StreamWindow>>,
    streams_capacity: usize,
    roles: HashMap<String, (Vec<String>, Vec<String>)>,
    random: SystemRandom,
    next_id: AtomicU64,
}

/// A replay stream's numbers: the highest and a bitmap of the 1024 below
/// it, shifted as the highest moves (the straightforward way).
#[derive(Default)]
struct StreamWindow {
    highest: u64,
    bits: [u64; 16],
    expiry: i64,
}

impl StreamWindow {
    /// Whether `seq` is new: not seen, not 1024 or more below the highest.
    fn accept(&mut self, seq: u64) -> bool {
        if seq > self.highest {
            let shift = seq - self.highest;
            if shift >= 1024 {
                self.bits = [0; 16];
            } else {
                // Bit `i` is `highest - i`: move every bit up by `shift`.
                let (words, bits) = ((shift / 64) as usize, (shift % 64) as u32);
                for i in (0..16).rev() {
                    let from = i as isize - words as isize;
                    let high = if from >= 0 {
                        self.bits[from as usize] << bits
                    } else {
                        0
                    };
                    let low = if bits > 0 && from > 0 {
                        self.bits[from as usize - 1] >> (64 - bits)
                    } else {
                        0
                    };
                    self.bits[i] = high | low;
                }
            }
            self.highest = seq;
            self.bits[0] |= 1;
            return true;
        }
        let age = self.highest - seq;
        if age >= 1024 {
            return false;
        }
        let (word, mask) = ((age / 64) as usize, 1u64 << (age % 64));
        if self.bits[word] & mask != 0 {
            return false;
        }
        self.bits[word] |= mask;
        true
    }
}

/// An error reply's code and why.
pub(super) type Refusal = (Code, &'static str);

fn level_of(name: &str) -> Option<u8> {
    ["Low", "Standard", "High", "Critical"]
        .iter()
        .position(|l| *l == name)
        .map(|i| i as u8)
}

fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

impl Checks {
    /// The keys of `credentials`, the rules of `config`.
    pub(super) fn new(config: &Config, credentials: &Credentials) -> Result<Checks, Error> {
        let bad = |what: &str| Error::new(Code::ConfigurationError, format!("baseline: {what}"));
        let mut checks = Checks {
            jwt: HashMap::new(),
            signing: HashMap::new(),
            encryption: HashMap::new(),
            min_level: config.security.min_security_level as u8,
            leeway: config.security.token_leeway_secs as i64,
            issuer: config.security.issuer.clone(),
            audience: config.security.audience.clone(),
            revoked: config.security.revoked_jti.iter().cloned().collect(),
            replay: Mutex::new(HashMap::new()),
            replay_capacity: config.security.replay_capacity as usize,
            streams: Mutex::new(HashMap::new()),
            streams_capacity: config.security.replay_streams as usize,
            roles: config
                .authorization
                .roles
                .iter()
                .map(|(name, role)| (name.clone(), (role.allow.clone(), role.deny.clone())))
                .collect(),
            random: SystemRandom::new(),
            next_id: AtomicU64::new(0),
        };
        if let Some(jwt) = &credentials.jwt {
            let secret = decode(&jwt.key.key).ok_or_else(|| bad("jwt key"))?;
            checks.jwt.insert(
                jwt.key.kid.clone(),
                hmac::Key::new(hmac::HMAC_SHA256, &secret),
            );
        }
        if let Some(signing) = &credentials.signing {
            let secret = decode(&signing.key).ok_or_else(|| bad("signing key"))?;
            checks.signing.insert(
                signing.kid.clone(),
                hmac::Key::new(hmac::HMAC_SHA256, &secret),
            );
        }
        if let Some(encryption) = &credentials.encryption {
            let secret = decode(&encryption.key).ok_or_else(|| bad("encryption key"))?;
            let key = UnboundKey::new(&AES_256_GCM, &secret).map_err(|_| bad("encryption key"))?;
            checks
                .encryption
                .insert(encryption.kid.clone(), LessSafeKey::new(key));
        }
        Ok(checks)
    }

    /// Stage 1: parse and validate the envelope.
    pub(super) fn validate(&self, body: &[u8]) -> Result<Parsed, Refusal> {
        let tree: Value =
            serde_json::from_slice(body).map_err(|_| (Code::InvalidFormat, "not JSON"))?;
        let envelope: Envelope = serde_json::from_value(tree.clone())
            .map_err(|_| (Code::ValidationFailed, "bad envelope"))?;
        if let Some(version) = &envelope.version
            && !version.starts_with("1.")
            && version != "1"
        {
            return Err((Code::UnsupportedVersion, "version"));
        }
        if envelope.id.is_empty()
            || envelope.id.len() > 128
            || !envelope
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        {
            return Err((Code::ValidationFailed, "id"));
        }
        if !["Command", "Response", "Event", "Error"].contains(&envelope.kind.as_str()) {
            return Err((Code::ValidationFailed, "type"));
        }
        let sent = OffsetDateTime::parse(&envelope.timestamp, &Rfc3339)
            .map_err(|_| (Code::ValidationFailed, "timestamp"))?;
        if (OffsetDateTime::now_utc() - sent).whole_seconds().abs() > 300 {
            return Err((Code::ValidationFailed, "timestamp outside the window"));
        }
        let level = level_of(&envelope.security.security_level)
            .ok_or((Code::ValidationFailed, "security_level"))?;
        if level < self.min_level {
            return Err((Code::AuthenticationFailed, "level too low"));
        }
        Ok(Parsed {
            tree,
            envelope,
            level,
        })
    }

    /// Stage 2: token, signature, replay.
    pub(super) fn authenticate(&self, parsed: Parsed) -> Result<Authenticated, Refusal> {
        let security = &parsed.envelope.security;
        let claims = match &security.auth_token {
            Some(token) => Some(self.verify_token(token)?),
            None if parsed.level >= 1 => return Err((Code::AuthenticationFailed, "no token")),
            None => None,
        };
        let signing_kid = match &security.signature {
            Some(signature) => Some(self.verify_signature(&parsed.tree, signature)?),
            None if parsed.level >= 2 => return Err((Code::SignatureInvalid, "no signature")),
            None => None,
        };
        let principal = claims.as_ref().map_or("anonymous", |c| c.sub.as_str());
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let stream = parsed
            .envelope
            .metadata
            .as_ref()
            .and_then(|metadata| metadata.get("replay"))
            .filter(|replay| !replay.is_null());
        if let Some(replay) = stream {
            let stream = replay.get("stream").and_then(Value::as_str);
            let seq = replay.get("seq").and_then(Value::as_u64);
            let (Some(stream), Some(seq)) = (stream, seq) else {
                return Err((Code::ValidationFailed, "metadata.replay"));
            };
            if seq == 0 || seq > (1 << 53) - 1 || replay.as_object().map_or(0, Map::len) != 2 {
                return Err((Code::ValidationFailed, "metadata.replay"));
            }
            let mut streams = self.streams.lock();
            if streams.len() >= self.streams_capacity {
                streams.retain(|_, window| window.expiry > now);
            }
            let key = (principal.to_owned(), stream.to_owned());
            if !streams.contains_key(&key) && streams.len() >= self.streams_capacity {
                return Err((Code::ResourceExhausted, "stream map full"));
            }
            let window = streams.entry(key).or_default();
            if !window.accept(seq) {
                return Err((Code::ReplayDetected, "replay"));
            }
            window.expiry = now + 302;
        } else {
            let mut seen = self.replay.lock();
            if seen.len() >= self.replay_capacity {
                seen.retain(|_, expiry| *expiry > now);
                if seen.len() >= self.replay_capacity {
                    return Err((Code::ResourceExhausted, "replay map full"));
                }
            }
            let key = (principal.to_owned(), parsed.envelope.id.clone());
            if seen.insert(key, now + 300).is_some() {
                return Err((Code::ReplayDetected, "replay"));
            }
        }
        let roles = match claims {
            Some(claims) => claims.roles,
            None => vec!["anonymous".to_owned()],
        };
        Ok(Authenticated {
            parsed,
            roles,
            signing_kid,
        })
    }

    fn verify_token(&self, token: &str) -> Result<Claims, Refusal> {
        const FAILED: Refusal = (Code::AuthenticationFailed, "token");
        if token.len() > 8192 {
            return Err(FAILED);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(FAILED);
        };
        let header: Header =
            serde_json::from_slice(&decode(header).ok_or(FAILED)?).map_err(|_| FAILED)?;
        if header.alg != "HS256" {
            return Err(FAILED);
        }
        let key = self
            .jwt
            .get(header.kid.as_deref().ok_or(FAILED)?)
            .ok_or(FAILED)?;
        let signed = &token[..token.len() - signature.len() - 1];
        hmac::verify(key, signed.as_bytes(), &decode(signature).ok_or(FAILED)?)
            .map_err(|_| FAILED)?;
        let claims: Claims =
            serde_json::from_slice(&decode(claims).ok_or(FAILED)?).map_err(|_| FAILED)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if claims.nbf.is_some_and(|nbf| nbf > now + self.leeway)
            || claims.iat.is_some_and(|iat| iat > now + self.leeway)
        {
            return Err(FAILED);
        }
        if self.issuer.is_some() && claims.iss != self.issuer
            || self.audience.is_some() && claims.aud != self.audience
        {
            return Err(FAILED);
        }
        if claims
            .jti
            .as_ref()
            .is_some_and(|jti| self.revoked.contains(jti))
        {
            return Err(FAILED);
        }
        if claims.exp + self.leeway < now {
            return Err((Code::TokenExpired, "expired"));
        }
        Ok(claims)
    }

    fn verify_signature(&self, tree: &Value, signature: &str) -> Result<String, Refusal> {
        const INVALID: Refusal = (Code::SignatureInvalid, "signature");
        let (kid, tag) = signature.rsplit_once(':').ok_or(INVALID)?;
        let key = self.signing.get(kid).ok_or(INVALID)?;
        let mut unsigned = tree.clone();
        if let Some(security) = unsigned.get_mut("security").and_then(Value::as_object_mut) {
            security.remove("signature");
        }
        let canonical = serde_json::to_vec(&unsigned).map_err(|_| INVALID)?;
        hmac::verify(key, &canonical, &decode(tag).ok_or(INVALID)?).map_err(|_| INVALID)?;
        Ok(kid.to_owned())
    }

    /// Stage 3: decrypt, route, authorize, execute, and build the reply
    /// (encrypted and signed as the request was). `None`: no reply (an
    /// event without `ack`).
    pub(super) fn execute(&self, message: Authenticated) -> Result<Option<Vec<u8>>, Refusal> {
        let envelope = &message.parsed.envelope;
        let (payload, key_id) = match &envelope.security.encryption_info {
            Some(info) => (self.decrypt(envelope, info)?, Some(info.key_id.as_str())),
            None if message.parsed.level >= 3 => {
                return Err((Code::EncryptionFailed, "not encrypted"));
            }
            None => (envelope.payload.clone(), None),
        };
        let ack = envelope
            .metadata
            .as_ref()
            .and_then(|m| m.get("ack"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let (name, result) = match envelope.kind.as_str() {
            "Command" => {
                let name = payload
                    .get("command")
                    .and_then(Value::as_str)
                    .ok_or((Code::ValidationFailed, "command"))?;
                (name, payload.get("args").cloned().unwrap_or(Value::Null))
            }
            "Event" => {
                let name = payload
                    .get("event")
                    .and_then(Value::as_str)
                    .ok_or((Code::ValidationFailed, "event"))?;
                (name, json!({"delivered": 1}))
            }
            _ => return Ok(None),
        };
        if name != "demo.echo" && name != "demo.notice" {
            return Err((Code::HandlerNotFound, "no such command"));
        }
        let resource = name.replacen('.', ":", 1);
        if !self.allowed(&message.roles, &resource) {
            return Err((Code::AccessDenied, "not allowed"));
        }
        if envelope.kind == "Event" && !ack {
            return Ok(None);
        }
        self.reply(
            envelope,
            message.parsed.level,
            json!({ "result": result }),
            key_id,
            message.signing_kid.as_deref(),
        )
        .map(Some)
    }

    fn decrypt(&self, envelope: &Envelope, info: &EncryptionInfo) -> Result<Value, Refusal> {
        const FAILED: Refusal = (Code::EncryptionFailed, "decrypt");
        if info.algorithm != "AES-256-GCM" {
            return Err(FAILED);
        }
        let key = self.encryption.get(&info.key_id).ok_or(FAILED)?;
        let nonce: [u8; 12] = decode(&info.nonce)
            .ok_or(FAILED)?
            .try_into()
            .map_err(|_| FAILED)?;
        let mut sealed = decode(envelope.payload.as_str().ok_or(FAILED)?).ok_or(FAILED)?;
        let aad = format!("{}\n{}\n{}", envelope.id, envelope.kind, envelope.timestamp);
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| FAILED)?;
        serde_json::from_slice(plain).map_err(|_| FAILED)
    }

    fn allowed(&self, roles: &[String], resource: &str) -> bool {
        let matches = |pattern: &String| {
            let (mut p, mut r) = (pattern.split(':'), resource.split(':'));
            loop {
                match (p.next(), r.next()) {
                    (None, None) => return true,
                    (Some(a), Some(b)) if a == "*" || a == b => {}
                    _ => return false,
                }
            }
        };
        let mut allowed = false;
        for role in roles {
            if let Some((allow, deny)) = self.roles.get(role) {
                if deny.iter().any(matches) {
                    return false;
                }
                allowed |= allow.iter().any(matches);
            }
        }
        allowed
    }

    fn reply(
        &self,
        request: &Envelope,
        level: u8,
        payload: Value,
        key_id: Option<&str>,
        signing_kid: Option<&str>,
    ) -> Result<Vec<u8>, Refusal> {
        const FAILED: Refusal = (Code::InternalError, "reply");
        let id = format!("b-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let timestamp = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .map_err(|_| FAILED)?;
        let level_name = ["Low", "Standard", "High", "Critical"][usize::from(level.min(3))];
        let (payload, encryption_info) = match key_id {
            Some(kid) => {
                let key = self.encryption.get(kid).ok_or(FAILED)?;
                let mut nonce = [0u8; 12];
                self.random.fill(&mut nonce).map_err(|_| FAILED)?;
                let aad = format!("{id}\nResponse\n{timestamp}");
                let mut sealed = serde_json::to_vec(&payload).map_err(|_| FAILED)?;
                key.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad.as_bytes()),
                    &mut sealed,
                )
                .map_err(|_| FAILED)?;
                (
                    Value::String(URL_SAFE_NO_PAD.encode(&sealed)),
                    json!({"algorithm": "AES-256-GCM", "key_id": kid, "nonce": URL_SAFE_NO_PAD.encode(nonce)}),
                )
            }
            None => (payload, Value::Null),
        };
        let mut reply = json!({
            "version": "1.0",
            "id": id,
            "type": "Response",
            "payload": payload,
            "metadata": {"correlation_id": request.id},
            "security": {
                "security_level": level_name,
                "encryption_info": encryption_info,
                "auth_token": null,
            },
            "timestamp": timestamp,
        });
        if let Some(kid) = signing_kid {
            let key = self.signing.get(kid).ok_or(FAILED)?;
            let canonical = serde_json::to_vec(&reply).map_err(|_| FAILED)?;
            let tag = hmac::sign(key, &canonical);
            if let Some(security) = reply.get_mut("security").and_then(Value::as_object_mut) {
                security.insert(
                    "signature".into(),
                    Value::String(format!("{kid}:{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))),
                );
            }
        }
        serde_json::to_vec(&reply).map_err(|_| FAILED)
    }

    /// An Error reply (plaintext, unsigned, level Low).
    pub(super) fn error_reply(&self, correlation_id: Option<&str>, refusal: Refusal) -> Vec<u8> {
        let (code, message) = refusal;
        let id = format!("b-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let timestamp = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let reply = json!({
            "version": "1.0",
            "id": id,
            "type": "Error",
            "payload": {
                "category": code.category().as_str(),
                "code": code.as_str(),
                "message": message,
                "retryable": code.is_retryable(),
            },
            "metadata": {"correlation_id": correlation_id},
            "security": {"security_level": "Low", "encryption_info": null, "signature": null, "auth_token": null},
            "timestamp": timestamp,
        });
        serde_json::to_vec(&reply).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::StreamWindow;

    #[test]
    fn the_baseline_window_refuses_repeats_and_numbers_below_it() {
        let mut window = StreamWindow::default();
        for seq in [5, 3, 70, 200, 1100] {
            assert!(window.accept(seq), "{seq}");
        }
        for seq in [5, 70, 200, 1100, 76, 1] {
            assert!(!window.accept(seq), "{seq}");
        }
        assert!(window.accept(77));
        assert!(window.accept(1099));
        assert!(window.accept(5000));
        assert!(!window.accept(1100));
        assert!(window.accept(4000));
        assert!(!window.accept(3976));
    }
}

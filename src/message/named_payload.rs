//! The payload of a Command or an Event: `{"command": name, "args": args}`
//! or `{"event": name, "data": data}` (docs/protocol.md section 3), as the
//! client and the engine's own calls build it.

use crate::error::Error;
use crate::json::RawJson;

/// `{"<kind>": name, "<field>": value}` (the field left out without a
/// value): a Command's or an Event's payload.
pub(crate) fn named_payload(
    kind: &str,
    name: &str,
    field: &str,
    value: Option<&RawJson>,
) -> Result<RawJson, Error> {
    let mut payload = format!("{{\"{kind}\":");
    payload.push_str(&serde_json::to_string(name).unwrap_or_default());
    if let Some(value) = value {
        payload.push_str(&format!(",\"{field}\":"));
        payload.push_str(value.as_str());
    }
    payload.push('}');
    RawJson::parse(&payload)
}

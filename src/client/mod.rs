//! The client library: connect to an MCP server (TLS or plain), build
//! requests for every security level, send many at once on one connection,
//! and open the replies (signature checked, payload decrypted).
//!
//! ```no_run
//! use std::time::Duration;
//! use mcp_engine::client::{Connector, Credentials, Envelopes};
//! use mcp_engine::{Codec, RawJson, SecurityLevel};
//!
//! let credentials = Credentials::load("credentials.json".as_ref())?;
//! let client = Connector::from_credentials(&credentials)?.connect()?;
//! let mut envelopes = Envelopes::from_credentials(&credentials, "admin")?;
//! let args = RawJson::parse(r#"{"hi":1}"#)?;
//! let request = envelopes.command(Codec::Json, SecurityLevel::Critical, "demo.echo", Some(&args))?;
//! let reply = client.call(&request, Duration::from_secs(5))?;
//! let opened = envelopes.open(reply.codec, &reply.body)?;
//! println!("{}", opened.to_json());
//! # Ok::<(), mcp_engine::Error>(())
//! ```

mod connection;
mod credentials;
mod envelopes;

pub use crate::tls::client_config;
pub use connection::{Client, ClientReply, Connector, ReplyWaiter};
pub use credentials::{Credentials, JwtKey, NamedKey};
pub use envelopes::{Envelopes, Opened, Outgoing, encode};

//! Which public types may cross threads: checked at compile time, so that a
//! change that makes one `!Send` (an `Rc`, a raw pointer) fails the build.

use mcp_engine::codec::{Canonicalizer, Decoder};
use mcp_engine::frame::{Frame, FrameDecoder, FrameError};
use mcp_engine::{Config, Error, JsonRef, Limits, Message, MessageView, RawJson, Timestamp};

fn send<T: Send>() {}
fn sync<T: Sync>() {}

#[test]
fn owned_values_are_send_and_sync() {
    send::<Message>();
    sync::<Message>();
    send::<RawJson>();
    sync::<RawJson>();
    send::<Timestamp>();
    sync::<Timestamp>();
    send::<Error>();
    sync::<Error>();
    send::<Config>();
    sync::<Config>();
    send::<Limits>();
    sync::<Limits>();
    send::<FrameError>();
    sync::<FrameError>();
}

#[test]
fn per_thread_workers_can_move_to_their_thread() {
    // One per thread, moved there at start: Send is what matters.
    send::<Decoder>();
    send::<FrameDecoder>();
    send::<Canonicalizer>();
    sync::<Decoder>();
    sync::<FrameDecoder>();
}

#[test]
fn views_can_be_shared_and_sent_with_their_buffer() {
    send::<MessageView<'static>>();
    sync::<MessageView<'static>>();
    send::<JsonRef<'static>>();
    sync::<JsonRef<'static>>();
    send::<Frame<'static>>();
}

#[test]
fn shared_security_state_is_send_and_sync() {
    use mcp_engine::security::test_support::{Policy, ReplayGuard};
    use mcp_engine::security::{
        Keyring, NonceSequence, SecurityState, SharedKeyring, SharedRevocations,
    };
    send::<SecurityState>();
    sync::<SecurityState>();
    send::<SharedKeyring>();
    sync::<SharedKeyring>();
    send::<SharedRevocations>();
    sync::<SharedRevocations>();
    send::<ReplayGuard>();
    sync::<ReplayGuard>();
    send::<NonceSequence>();
    sync::<NonceSequence>();
    send::<Keyring>();
    sync::<Keyring>();
    send::<Policy>();
    sync::<Policy>();
}

#[test]
fn per_worker_security_moves_to_its_thread() {
    use mcp_engine::security::test_support::TokenCache;
    use mcp_engine::security::{Admission, NonceSource};
    send::<Admission>();
    send::<TokenCache>();
    send::<NonceSource>();
}

//! What a thread outside the engine writes with (a submitter answering
//! what the engine refuses at intake, a caller of `Engine::send_command`):
//! a decoder and a reply writer of that thread's own, and the refusals
//! themselves (`resource_exhausted` when a queue is full, `unavailable`
//! while shutting down).

use crate::codec::{Decoder, Limits};
use crate::error::{Code, Error};

use super::reply::ReplyWriter;
use super::shared::Shared;
use super::sink::Destination;
use super::worker_shared::Submission;

/// A calling thread's own decoder and reply writer.
struct CallerWriter {
    decoder: Decoder,
    writer: Option<ReplyWriter>,
}

thread_local! {
    static CALLER: std::cell::RefCell<CallerWriter> = std::cell::RefCell::new(CallerWriter {
        decoder: Decoder::new(Limits::default()),
        writer: None,
    });
}

/// Runs `write` with this thread's decoder and reply writer.
pub(super) fn with_writer<R>(
    shared: &Shared,
    write: impl FnOnce(&mut Decoder, &mut ReplyWriter) -> R,
) -> R {
    CALLER.with(|caller| {
        let mut caller = caller.borrow_mut();
        let CallerWriter { decoder, writer } = &mut *caller;
        let writer = writer.get_or_insert_with(|| ReplyWriter::new(shared.boot));
        write(decoder, writer)
    })
}

/// Answers a submission the engine could not take with `code`'s Error
/// (named, when its body has a readable id), counts it, and returns the
/// code.
pub(super) fn refuse(shared: &Shared, submission: Submission, code: Code) -> Code {
    let error = match code {
        Code::ResourceExhausted => Error::new(code, "the engine's queue is full"),
        _ => Error::new(code, "the engine is not taking messages"),
    };
    let Submission {
        sink,
        tag,
        codec,
        body,
        ..
    } = submission;
    with_writer(shared, |decoder, writer| {
        // The id, if the body has a readable one, for the correlation.
        let id = decoder.readable_id(codec, &body);
        let to = Destination { sink, tag, codec };
        writer.error(&shared.sinks, to, id.as_deref(), &error);
        shared.sent_error(shared.intake_slot(), &error, id.as_deref());
    });
    shared
        .metrics
        .counters(shared.intake_slot())
        .refused_at_intake();
    code
}

//! Length-prefixed framing for streams (docs/protocol.md section 2).
//!
//! ```text
//! +----------------------+-----------+------------------------+
//! | length: u32 big-end. | codec: u8 | body: length - 1 bytes |
//! +----------------------+-----------+------------------------+
//! ```
//!
//! [`FrameDecoder`] is sans-I/O: feed it bytes as they arrive, in any
//! chunking, and take frames out. It holds only bytes it was given and has
//! not yet returned, and refuses a frame over the limit as soon as its
//! header arrives, before any of its body is buffered.

use std::io::{self, Read};

use crate::codec::Codec;
use crate::error::{Code, Error};

/// Bytes before the body: the length and the codec byte.
pub const HEADER_LEN: usize = 5;

/// A framing fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The declared length exceeds `max_message_size + 1`. Fatal: the stream
    /// cannot be trusted past it; answer `message_too_large` and close.
    #[error("frame length {length} exceeds the limit of {limit} (max_message_size + 1)")]
    TooLarge {
        /// The declared length.
        length: u32,
        /// The largest allowed length.
        limit: u64,
    },
    /// A length of 0: no codec byte. The stream goes on after it.
    #[error("frame of length 0 has no codec byte")]
    Empty,
    /// An unknown codec byte. The frame is skipped; the stream goes on.
    #[error("unknown codec byte {0:#04x}")]
    UnknownCodec(u8),
}

impl FrameError {
    /// Whether the connection must be closed after answering.
    pub fn is_fatal(&self) -> bool {
        matches!(self, FrameError::TooLarge { .. })
    }

    /// The protocol error to answer with.
    pub fn to_error(&self) -> Error {
        match self {
            FrameError::TooLarge { .. } => Error::new(Code::MessageTooLarge, self.to_string()),
            FrameError::Empty | FrameError::UnknownCodec(_) => {
                Error::new(Code::InvalidFormat, self.to_string())
            }
        }
    }
}

/// One frame, borrowed from the decoder until the next call.
///
/// The body is mutable so that a JSON body can be parsed in place.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The body's encoding.
    pub codec: Codec,
    /// The body.
    pub body: &'a mut [u8],
}

/// An incremental frame decoder.
///
/// ```
/// use mcp_engine::frame::{FrameDecoder, write_frame};
/// use mcp_engine::codec::Codec;
///
/// let mut wire = Vec::new();
/// write_frame(&mut wire, Codec::Json, b"{}").unwrap();
/// let mut decoder = FrameDecoder::new(1024);
/// for byte in &wire {
///     decoder.push(std::slice::from_ref(byte));
/// }
/// let frame = decoder.next_frame().unwrap().unwrap();
/// assert_eq!((frame.codec, &*frame.body), (Codec::Json, &b"{}"[..]));
/// assert!(decoder.next_frame().is_none());
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    /// Received bytes in `start..end`. Past `end` lies room already zeroed
    /// by an earlier read: it is kept, so that a read does not clear its
    /// whole chunk again (64 KiB per call, mostly for a `WouldBlock`).
    buffer: Vec<u8>,
    /// The first byte not yet consumed.
    start: usize,
    /// The end of the bytes received.
    end: usize,
    max_length: u64,
    failed: bool,
    /// Bytes received in all.
    received: u64,
}

/// What a decoder's buffer shrinks back to once a large frame is gone:
/// room for two reads (see `framed_connection.rs`), so that a connection that once sent
/// a megabyte does not keep it while idle.
const RESTING_BYTES: usize = 128 * 1024;

impl FrameDecoder {
    /// A decoder for bodies of at most `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> FrameDecoder {
        FrameDecoder {
            buffer: Vec::new(),
            start: 0,
            end: 0,
            max_length: max_length(max_message_size),
            failed: false,
            received: 0,
        }
    }

    /// Changes the limit for frames whose header has not been read yet.
    pub fn set_max_message_size(&mut self, max_message_size: usize) {
        self.max_length = max_length(max_message_size);
    }

    /// Appends received bytes. Ignored after a fatal error.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed {
            return;
        }
        self.compact();
        let Some(room) = self.room(bytes.len()) else {
            return;
        };
        room.copy_from_slice(bytes);
        self.end += bytes.len();
        self.received += bytes.len() as u64;
    }

    /// Reads once from `reader` straight into the buffer, at most `limit`
    /// bytes; returns what `read` returned (0 at end of stream).
    pub fn read_from(&mut self, reader: &mut impl Read, limit: usize) -> io::Result<usize> {
        if self.failed {
            return Ok(0);
        }
        self.compact();
        let Some(room) = self.room(limit) else {
            return Ok(0);
        };
        let result = reader.read(room);
        let read = (*result.as_ref().unwrap_or(&0)).min(limit);
        self.end += read;
        self.received += read as u64;
        result
    }

    /// The `len` bytes after `end`, grown (and zeroed) only past what
    /// earlier calls left; `None` only if `end + len` overflows.
    fn room(&mut self, len: usize) -> Option<&mut [u8]> {
        let needed = self.end.checked_add(len)?;
        if self.buffer.len() < needed {
            self.buffer.resize(needed, 0);
        }
        self.buffer.get_mut(self.end..needed)
    }

    /// The next complete frame, a framing error, or `None` until more bytes
    /// arrive (and forever after a fatal error).
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, FrameError>> {
        if self.failed {
            return None;
        }
        let available = self.buffer.get(self.start..self.end).unwrap_or_default();
        let header: [u8; 4] = available.get(..4)?.try_into().ok()?;
        let length = u32::from_be_bytes(header);
        if length == 0 {
            self.start += 4;
            return Some(Err(FrameError::Empty));
        }
        if u64::from(length) > self.max_length {
            self.failed = true;
            self.buffer = Vec::new();
            self.start = 0;
            self.end = 0;
            return Some(Err(FrameError::TooLarge {
                length,
                limit: self.max_length,
            }));
        }
        let end = 4 + usize::try_from(length).ok()?;
        if available.len() < end {
            // Not reserved ahead: memory follows the bytes a peer actually
            // sends, not the length it announces.
            return None;
        }
        let codec_byte = *available.get(4)?;
        let body = self.start + HEADER_LEN..self.start + end;
        self.start += end;
        Some(match Codec::from_byte(codec_byte) {
            Some(codec) => Ok(Frame {
                codec,
                body: self.buffer.get_mut(body)?,
            }),
            None => Err(FrameError::UnknownCodec(codec_byte)),
        })
    }

    /// Bytes received and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Bytes received in all since the decoder was made (whether or not
    /// they have been returned as frames yet).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The bytes the buffer holds now, taken and zeroed room included.
    pub fn capacity(&self) -> usize {
        self.buffer.capacity()
    }

    /// Gives the buffer back if it holds nothing (a connection gone quiet
    /// keeps no room for bytes that may never come).
    pub fn release_if_empty(&mut self) {
        if self.buffered() == 0 {
            self.buffer = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }

    /// Whether a fatal error stopped the decoder.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Drops consumed bytes from the front of the buffer, and gives back
    /// what a large frame grew it to once the bytes left fit its resting
    /// size.
    fn compact(&mut self) {
        if self.start != 0 {
            if self.start < self.end && self.end <= self.buffer.len() {
                self.buffer.copy_within(self.start..self.end, 0);
            }
            self.end = self.end.saturating_sub(self.start);
            self.start = 0;
        }
        if self.buffer.capacity() > RESTING_BYTES && self.end <= RESTING_BYTES / 2 {
            self.buffer.truncate(RESTING_BYTES);
            self.buffer.shrink_to(RESTING_BYTES);
        }
    }
}

fn max_length(max_message_size: usize) -> u64 {
    u64::try_from(max_message_size)
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// The 5-byte header of a frame whose body is `body_len` bytes, for writers
/// that send header and body without copying them together.
pub fn frame_header(codec: Codec, body_len: usize) -> Result<[u8; HEADER_LEN], FrameError> {
    let length = u32::try_from(body_len)
        .ok()
        .and_then(|len| len.checked_add(1))
        .ok_or(FrameError::TooLarge {
            length: u32::MAX,
            limit: u64::from(u32::MAX),
        })?;
    let [a, b, c, d] = length.to_be_bytes();
    Ok([a, b, c, d, codec.byte()])
}

/// Appends one frame to `out`.
pub fn write_frame(out: &mut Vec<u8>, codec: Codec, body: &[u8]) -> Result<(), FrameError> {
    out.extend_from_slice(&frame_header(codec, body.len())?);
    out.extend_from_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(decoder: &mut FrameDecoder) -> Vec<Result<(Codec, Vec<u8>), FrameError>> {
        let mut out = Vec::new();
        while let Some(next) = decoder.next_frame() {
            out.push(next.map(|f| (f.codec, f.body.to_vec())));
        }
        out
    }

    #[test]
    fn decodes_back_to_back_frames_of_both_codecs() {
        let mut wire = Vec::new();
        write_frame(&mut wire, Codec::Json, b"{\"a\":1}").unwrap();
        write_frame(&mut wire, Codec::Binary, &[1, 2, 3]).unwrap();
        write_frame(&mut wire, Codec::Json, b"").unwrap();
        let mut decoder = FrameDecoder::new(64);
        decoder.push(&wire);
        assert_eq!(
            frames_of(&mut decoder),
            vec![
                Ok((Codec::Json, b"{\"a\":1}".to_vec())),
                Ok((Codec::Binary, vec![1, 2, 3])),
                Ok((Codec::Json, vec![])),
            ]
        );
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn an_oversized_frame_is_refused_at_its_header_and_stops_the_stream() {
        let mut decoder = FrameDecoder::new(10);
        decoder.push(&[0, 0, 0, 11, b'J']);
        assert!(
            decoder.next_frame().is_none(),
            "11 is within the limit: wait for the body"
        );
        let mut decoder = FrameDecoder::new(10);
        decoder.push(&12u32.to_be_bytes());
        let error = decoder.next_frame().unwrap().unwrap_err();
        assert_eq!(
            error,
            FrameError::TooLarge {
                length: 12,
                limit: 11
            }
        );
        assert!(error.is_fatal());
        assert_eq!(error.to_error().code(), Code::MessageTooLarge);
        decoder.push(b"more bytes");
        assert!(decoder.next_frame().is_none());
        assert!(decoder.is_failed());
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn an_announced_length_reserves_nothing_ahead_of_the_bytes() {
        let mut decoder = FrameDecoder::new(1 << 20);
        decoder.push(&(1u32 << 20).to_be_bytes());
        decoder.push(b"J");
        assert!(decoder.next_frame().is_none());
        assert!(
            decoder.buffer.capacity() < 1024,
            "{}",
            decoder.buffer.capacity()
        );
    }

    #[test]
    fn the_buffer_shrinks_back_once_a_large_frame_is_taken() {
        let mut decoder = FrameDecoder::new(4 << 20);
        let body = vec![b'x'; 1 << 20];
        let mut framed = Vec::new();
        write_frame(&mut framed, Codec::Json, &body).unwrap();
        decoder.push(&framed);
        assert!(decoder.capacity() > 1 << 20);
        assert_eq!(decoder.next_frame().unwrap().unwrap().body.len(), 1 << 20);
        // The next read (here, of a small frame) gives the megabyte back.
        let mut small = Vec::new();
        write_frame(&mut small, Codec::Json, b"{}").unwrap();
        decoder.push(&small);
        assert!(
            decoder.capacity() <= RESTING_BYTES,
            "{}",
            decoder.capacity()
        );
        assert_eq!(&*decoder.next_frame().unwrap().unwrap().body, b"{}");
        assert_eq!(decoder.received(), (framed.len() + small.len()) as u64);
    }

    #[test]
    fn a_frame_of_exactly_the_limit_passes() {
        let mut decoder = FrameDecoder::new(10);
        let mut wire = Vec::new();
        write_frame(&mut wire, Codec::Json, &[b'x'; 10]).unwrap();
        decoder.push(&wire);
        assert_eq!(
            frames_of(&mut decoder),
            vec![Ok((Codec::Json, vec![b'x'; 10]))]
        );
    }

    #[test]
    fn unknown_codec_and_empty_frames_are_skipped_and_the_stream_goes_on() {
        let mut wire = vec![0, 0, 0, 3, b'X', 9, 9, 0, 0, 0, 0];
        write_frame(&mut wire, Codec::Json, b"1").unwrap();
        let mut decoder = FrameDecoder::new(64);
        decoder.push(&wire);
        let events = frames_of(&mut decoder);
        assert_eq!(
            events,
            vec![
                Err(FrameError::UnknownCodec(b'X')),
                Err(FrameError::Empty),
                Ok((Codec::Json, b"1".to_vec())),
            ]
        );
        assert_eq!(FrameError::Empty.to_error().code(), Code::InvalidFormat);
        assert!(!FrameError::UnknownCodec(0).is_fatal());
    }

    #[test]
    fn reads_from_a_reader_in_small_pieces() {
        let mut wire = Vec::new();
        for i in 0..50u8 {
            write_frame(&mut wire, Codec::Binary, &vec![i; usize::from(i)]).unwrap();
        }
        let mut reader = &wire[..];
        let mut decoder = FrameDecoder::new(100);
        let mut got = Vec::new();
        while decoder.read_from(&mut reader, 7).unwrap() > 0 {
            got.extend(frames_of(&mut decoder));
        }
        assert_eq!(got.len(), 50);
        for (i, frame) in got.into_iter().enumerate() {
            assert_eq!(frame.unwrap().1, vec![i as u8; i]);
        }
    }

    /// A reader that hands out its pieces one per call, then `WouldBlock`.
    struct Pieces(Vec<Vec<u8>>);

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let piece = self.0.remove(0);
            buf[..piece.len()].copy_from_slice(&piece);
            Ok(piece.len())
        }
    }

    #[test]
    fn reads_that_would_block_keep_their_room_and_old_bytes_never_resurface() {
        let mut long = Vec::new();
        write_frame(&mut long, Codec::Json, &[b'a'; 20]).unwrap();
        let mut short = Vec::new();
        write_frame(&mut short, Codec::Json, b"bb").unwrap();
        let (head, tail) = short.split_at(3);
        let mut reader = Pieces(vec![long, head.to_vec(), tail.to_vec()]);
        let mut decoder = FrameDecoder::new(100);
        assert_eq!(decoder.read_from(&mut reader, 64).unwrap(), 25);
        assert_eq!(
            frames_of(&mut decoder),
            vec![Ok((Codec::Json, vec![b'a'; 20]))]
        );
        // The room left holds the long frame's bytes: the short frame's
        // first three must not complete a frame from them.
        assert_eq!(decoder.read_from(&mut reader, 64).unwrap(), 3);
        assert_eq!(decoder.buffered(), 3);
        assert!(decoder.next_frame().is_none());
        assert_eq!(decoder.read_from(&mut reader, 64).unwrap(), 4);
        assert_eq!(
            frames_of(&mut decoder),
            vec![Ok((Codec::Json, b"bb".to_vec()))]
        );
        let room = decoder.buffer.len();
        for _ in 0..3 {
            let blocked = decoder.read_from(&mut reader, 64).unwrap_err();
            assert_eq!(blocked.kind(), io::ErrorKind::WouldBlock);
        }
        assert_eq!(decoder.buffered(), 0);
        assert_eq!(
            decoder.buffer.len(),
            room,
            "the zeroed room is reused, not regrown"
        );
    }

    #[test]
    fn header_refuses_a_body_beyond_the_length_field() {
        assert!(frame_header(Codec::Json, u32::MAX as usize).is_err());
        assert_eq!(frame_header(Codec::Binary, 2).unwrap(), [0, 0, 0, 3, b'R']);
    }
}

//! [`FramedConnection`]: one non-blocking TCP connection, with or without TLS, as the
//! server and the client both drive it: bytes in to a frame decoder, bytes
//! out from a buffer. It owns the TLS dance (records in and out, the
//! handshake, alerts) so that neither side has to. Public for programs
//! that drive many connections from one event loop of their own (the load
//! generator of `mcp-bench` does).

use std::io::{self, Write};

use mio::net::TcpStream;

use crate::frame::FrameDecoder;

/// How much one read takes at most, so that one busy connection cannot
/// keep its thread from the others for long.
const READ_CHUNK: usize = 64 * 1024;

/// What the outbound buffer shrinks back to once a large reply is out.
const OUT_RESTING_BYTES: usize = 64 * 1024;

/// Why a connection failed.
#[derive(Debug)]
pub enum ConnectionError {
    /// The socket failed.
    Io(io::Error),
    /// The TLS layer refused the peer (handshake, version, certificate, a
    /// bad record).
    Tls(rustls::Error),
}

/// What one read step got.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// Bytes went to the decoder (or to TLS' buffers).
    Progress,
    /// Nothing more now.
    WouldBlock,
    /// The peer closed its side.
    Ended,
}

/// A TCP connection, plain or TLS, with its outbound buffer.
pub struct FramedConnection {
    pub(crate) socket: TcpStream,
    tls: Option<Box<rustls::Connection>>,
    /// Bytes not yet handed to the socket (or TLS), from `out_start`.
    out: Vec<u8>,
    out_start: usize,
    /// Outbound bytes handed on in all.
    written: u64,
}

impl std::fmt::Debug for FramedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramedConnection")
            .field("tls", &self.tls.is_some())
            .field("pending", &self.pending())
            .finish()
    }
}

impl FramedConnection {
    /// A connection over `socket` (non-blocking), through `tls` if given.
    pub fn new(socket: TcpStream, tls: Option<rustls::Connection>) -> FramedConnection {
        FramedConnection {
            socket,
            tls: tls.map(Box::new),
            out: Vec::new(),
            out_start: 0,
            written: 0,
        }
    }

    /// The outbound buffer, to append frames to.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Outbound bytes not yet handed on.
    pub fn pending(&self) -> usize {
        self.out.len() - self.out_start
    }

    /// Outbound bytes handed to the socket (or TLS) since the wire was
    /// made: when it moves, the peer is reading.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The bytes the outbound buffer holds now.
    pub fn capacity(&self) -> usize {
        self.out.capacity()
    }

    /// Gives the outbound buffer back if it holds nothing.
    pub fn release_if_empty(&mut self) {
        if self.pending() == 0 {
            self.out = Vec::new();
            self.out_start = 0;
        }
    }

    /// Whether the TLS handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.is_handshaking())
    }

    /// Whether every outbound byte has gone to the socket.
    pub fn is_flushed(&self) -> bool {
        self.pending() == 0 && !self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Reads once: plaintext TLS already holds, else from the socket.
    pub fn read_into(&mut self, decoder: &mut FrameDecoder) -> Result<Read, ConnectionError> {
        self.read_at_most(decoder, READ_CHUNK)
    }

    /// [`read_into`](Self::read_into), handing the decoder at most `limit`
    /// bytes (at least one; more than 64 KiB is taken as 64 KiB). TLS may
    /// hold up to a record more in its own buffers.
    pub fn read_at_most(
        &mut self,
        decoder: &mut FrameDecoder,
        limit: usize,
    ) -> Result<Read, ConnectionError> {
        let limit = limit.clamp(1, READ_CHUNK);
        let Some(tls) = &mut self.tls else {
            return match decoder.read_from(&mut self.socket, limit) {
                Ok(0) => Ok(Read::Ended),
                Ok(_) => Ok(Read::Progress),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Read::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Read::Progress),
                Err(e) => Err(ConnectionError::Io(e)),
            };
        };
        match decoder.read_from(&mut tls.reader(), limit) {
            // The peer's close_notify.
            Ok(0) => return Ok(Read::Ended),
            Ok(_) => return Ok(Read::Progress),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // Closed without close_notify.
            Err(_) => return Ok(Read::Ended),
        }
        match tls.read_tls(&mut self.socket) {
            Ok(0) => Ok(Read::Ended),
            Ok(_) => match tls.process_new_packets() {
                Ok(_) => Ok(Read::Progress),
                Err(e) => {
                    // Tell the peer why (the alert), as far as it goes.
                    let _ = tls.write_tls(&mut self.socket);
                    Err(ConnectionError::Tls(e))
                }
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Read::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Read::Progress),
            Err(e) => Err(ConnectionError::Io(e)),
        }
    }

    /// Writes what the socket takes now.
    pub fn flush(&mut self) -> Result<(), ConnectionError> {
        match &mut self.tls {
            None => {
                while let Some(rest) = self.out.get(self.out_start..)
                    && !rest.is_empty()
                {
                    match self.socket.write(rest) {
                        Ok(0) => return Err(ConnectionError::Io(io::ErrorKind::WriteZero.into())),
                        Ok(n) => {
                            self.out_start += n;
                            self.written += n as u64;
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(ConnectionError::Io(e)),
                    }
                }
            }
            Some(tls) => loop {
                if !tls.is_handshaking()
                    && let Some(rest) = self.out.get(self.out_start..)
                    && !rest.is_empty()
                {
                    // rustls takes plaintext up to its buffer limit.
                    match tls.writer().write(rest) {
                        Ok(n) => {
                            self.out_start += n;
                            self.written += n as u64;
                        }
                        Err(e) => return Err(ConnectionError::Io(e)),
                    }
                }
                if !tls.wants_write() {
                    break;
                }
                match tls.write_tls(&mut self.socket) {
                    Ok(0) => return Err(ConnectionError::Io(io::ErrorKind::WriteZero.into())),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(ConnectionError::Io(e)),
                }
            },
        }
        if self.out_start == self.out.len() {
            self.out.clear();
            self.out_start = 0;
            // A large reply's room is given back once it is out.
            self.out.shrink_to(OUT_RESTING_BYTES);
        } else if self.out_start > self.out.len() / 2 {
            self.out.drain(..self.out_start);
            self.out_start = 0;
        }
        Ok(())
    }

    /// The socket, to register with a [`mio::Poll`].
    pub fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.socket
    }

    /// Says goodbye on the TLS layer, as far as the socket takes it now.
    pub fn close_notify(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            let _ = tls.write_tls(&mut self.socket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outbound_buffer_shrinks_back_once_a_large_reply_is_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let mut wire = FramedConnection::new(TcpStream::from_std(server), None);
        let reader = std::thread::spawn(move || {
            let mut client = client;
            let mut sink = vec![0u8; 1 << 20];
            let mut total = 0;
            while total < 1 << 20 {
                total += io::Read::read(&mut client, &mut sink).unwrap();
            }
            total
        });
        wire.out().extend_from_slice(&vec![b'x'; 1 << 20]);
        assert!(wire.capacity() >= 1 << 20);
        while wire.pending() > 0 {
            wire.flush().unwrap();
            std::thread::yield_now();
        }
        assert_eq!(reader.join().unwrap(), 1 << 20);
        assert_eq!(wire.written(), 1 << 20);
        assert!(wire.capacity() <= OUT_RESTING_BYTES, "{}", wire.capacity());
    }
}

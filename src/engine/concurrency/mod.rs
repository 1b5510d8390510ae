//! The engine's own concurrency primitives, each checked by a loom model
//! in `loom-tests/`:
//!
//! - [`Ring`] (`ring.rs`): the bounded lock-free queue between threads
//!   (`ring.rs`, `parker.rs` and `seat.rs` models);
//! - [`Parker`] (`parker.rs`): a worker parks, a producer wakes it, no
//!   wake-up lost (`parker.rs` model);
//! - [`Seat`] (`seat.rs`): a worker's state, which a submitter may take to
//!   run a message on its own thread while the worker sleeps (`seat.rs`
//!   model);
//! - [`CallWatch`] (`call_watch.rs`): the running message's address, which
//!   the worker and the timer race to answer once (`watch.rs` model).
//!
//! The pending call of a deferred command, the other race to answer once,
//! is `../pending.rs` (`completion_vs_timeout.rs` model).

// Public for the loom models and the queue bench (`engine::test_support`,
// feature test-support); the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

mod call_watch;
mod parker;
mod ring;
mod seat;

pub(crate) use call_watch::{Address, CallWatch, IdBytes, Ticket};
pub use parker::Parker;
pub use ring::Ring;
pub use seat::Seat;

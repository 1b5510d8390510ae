//! Running on the submitter (`engine.run_on_submitter`, the metric
//! `run_on_submitter`): a submitter that finds a worker parked runs its
//! message on its own thread, in the worker's seat, instead of waking the
//! worker, while the worker's idle time allows it.
//!
//! - [`Seat`] (`seat.rs`): the worker's state, which a submitter may take
//!   only while the worker sleeps and its queue is empty;
//! - [`RunCredit`] (`credit.rs`): how many messages submitters may run
//!   there, as a bucket of the worker's idle time.

// Public for the loom models (`engine::test_support`, feature test-support);
// the crate's own otherwise.
#![cfg_attr(not(feature = "test-support"), allow(unreachable_pub))]

mod credit;
mod seat;

pub(crate) use credit::RunCredit;
pub use seat::Seat;

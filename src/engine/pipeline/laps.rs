//! [`Laps`]: how long each stage took on one message, for the stage
//! latencies (`metrics.rs`).

use super::super::clock::Clock;
use super::super::metrics::{Metrics, Sample, TIMED_EVERY};
use super::Stage;

/// Per-stage timing of one message; one in [`TIMED_EVERY`] is timed (see
/// `metrics.rs`), and recorded at once when its stages are done.
pub(crate) struct Laps {
    timed: bool,
    mark: u64,
    sample: Sample,
}

impl Laps {
    pub(crate) fn new(sequence: u64, started: u64) -> Laps {
        Laps {
            timed: sequence.is_multiple_of(TIMED_EVERY),
            mark: started,
            sample: Sample::default(),
        }
    }

    /// The stage that just ended.
    pub(crate) fn lap(&mut self, clock: &Clock, stage: Stage) {
        if self.timed {
            let now = clock.now();
            self.sample.set(stage, now.saturating_sub(self.mark));
            self.mark = now;
        }
    }

    /// The last stage, `respond`, ended: it and the whole time since
    /// acceptance, from one clock read.
    pub(crate) fn finish(&mut self, clock: &Clock, accepted_at: u64) {
        if self.timed {
            let now = clock.now();
            self.sample
                .set(Stage::Respond, now.saturating_sub(self.mark));
            self.sample
                .set(Stage::Total, now.saturating_sub(accepted_at));
        }
    }

    /// Records the stages timed so far as thread `index`'s: before the
    /// message's reply leaves, so that whoever holds the reply can read
    /// its sample.
    pub(crate) fn record(&self, metrics: &Metrics, index: usize) {
        if self.timed {
            metrics.record(index, &self.sample);
        }
    }
}

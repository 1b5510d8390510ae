//! The stages by name, as the pipeline runs them and as latencies are
//! kept.

/// The stages a message crosses, as latencies are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Decoding and envelope rules.
    Validate,
    /// Token, signature, replay and decryption.
    Admit,
    /// Routing and authorization.
    Route,
    /// The handler.
    Execute,
    /// Building, protecting and handing over the reply.
    Respond,
    /// Acceptance to reply, queueing included.
    Total,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 6] = [
        Stage::Validate,
        Stage::Admit,
        Stage::Route,
        Stage::Execute,
        Stage::Respond,
        Stage::Total,
    ];

    /// The stage's name in metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::Admit => "admit",
            Stage::Route => "route",
            Stage::Execute => "execute",
            Stage::Respond => "respond",
            Stage::Total => "total",
        }
    }
}

//! What became of a webhook: the `outcome` label of `hookbridge_webhooks_total` and of the request
//! histogram, named once here for the pipeline, the HTTP layer and the dashboards' tests.

/// Every outcome a webhook can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Published,
    Duplicate,
    Spooled,
    DeadLettered,
    Handled,
    Rejected,
    Invalid,
    Failed,
    TooLarge,
    Overloaded,
    RateLimited,
    TimedOut,
    Unreadable,
}

impl Outcome {
    /// In the order the catalogue lists them; [`Outcome::index`] is the position here.
    pub const ALL: [Outcome; 13] = [
        Outcome::Published,
        Outcome::Duplicate,
        Outcome::Spooled,
        Outcome::DeadLettered,
        Outcome::Handled,
        Outcome::Rejected,
        Outcome::Invalid,
        Outcome::Failed,
        Outcome::TooLarge,
        Outcome::Overloaded,
        Outcome::RateLimited,
        Outcome::TimedOut,
        Outcome::Unreadable,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Published => "published",
            Outcome::Duplicate => "duplicate",
            Outcome::Spooled => "spooled",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Handled => "handled",
            Outcome::Rejected => "rejected",
            Outcome::Invalid => "invalid",
            Outcome::Failed => "failed",
            Outcome::TooLarge => "too_large",
            Outcome::Overloaded => "overloaded",
            Outcome::RateLimited => "rate_limited",
            Outcome::TimedOut => "timed_out",
            Outcome::Unreadable => "unreadable",
        }
    }

    /// Position in [`Outcome::ALL`], for per-outcome handle arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

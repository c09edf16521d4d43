//! A deterministic random stream for the store's unit tests (Marsaglia's
//! xorshift64, 13/7/17): the same seed gives the same keys, sizes and
//! choices on every run, so a failure reproduces.

/// The generator's state; the seed must not be 0.
pub(crate) struct TestRng(pub(crate) u64);

impl TestRng {
    /// The next number of the stream (never 0).
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

//! Shared pieces of the benchmarks under `benches/`: the deterministic
//! generator and the metric names of the building-automation topic space
//! that the topic and broker workloads draw from.

/// A small deterministic generator (xorshift64*), so every run and every
/// library measured sees the same sets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The last level of every generated topic.
pub const METRICS: [&str; 8] = [
    "temperature",
    "humidity",
    "co2",
    "pressure",
    "occupancy",
    "light",
    "power",
    "voltage",
];

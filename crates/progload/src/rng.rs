//! A seedable RNG for layout entropy and AT_RANDOM (ChaCha8 from `rand_chacha`).

use rand_core::{Infallible, Rng, SeedableRng, TryRng};

/// A deterministic RNG: the same seed gives the same layout.
#[derive(Clone, Debug)]
pub struct SeededRng(rand_chacha::ChaCha8Rng);

impl SeededRng {
    /// An RNG from a 64-bit seed.
    pub fn new(seed: u64) -> Self {
        SeededRng(rand_chacha::ChaCha8Rng::seed_from_u64(seed))
    }

    /// An RNG from 32 bytes of seed (e.g. fresh OS entropy).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SeededRng(rand_chacha::ChaCha8Rng::from_seed(seed))
    }
}

impl TryRng for SeededRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.0.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

//! Randomness, injectable like time: session ids and the pool's random choice of a waiting
//! container come from an [`Entropy`], so a deterministic simulation can replay a run from a
//! seed while a deployment draws from the operating system's CSPRNG.

use crate::names::SessionId;

/// A source of random bytes.
pub trait Entropy: Send + Sync + std::fmt::Debug {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);

    /// A new session id (128 bits).
    fn session(&self) -> SessionId {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        SessionId::from_bytes(bytes)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    fn below(&self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes);
        (u64::from_le_bytes(bytes) % n as u64) as usize
    }
}

/// The operating system's CSPRNG: what every deployment uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        // Without the OS generator no session may be issued; see `SessionId::generate`.
        #[allow(clippy::expect_used)]
        getrandom::fill(buf).expect("the operating system's random generator failed");
    }
}

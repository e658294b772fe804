//! The gate in front of an [`Authenticator`]: remembers answers and limits guessing.
//!
//! - A token validated lately is answered from memory for `auth_cache_secs`, so reload storms
//!   do not hammer auth2.
//! - A token auth2 rejected is remembered for [`REJECTION_MEMORY`] and not sent again.
//! - Failed validations are limited per client address (`auth_failures_per_minute`, a GCRA
//!   limit from `governor`); past it the address gets 429 for new tokens, without auth2
//!   being asked. IPv6 addresses count per /64, the smallest block a client is given.
//! - A request whose client cannot be told (it comes through a proxy that is not in
//!   `trusted_proxies`: every client behind it has the proxy's address) is counted against
//!   nobody: limiting the proxy would lock out everyone behind it. What bounds a guesser
//!   there is the memory of rejected tokens (each bad token reaches auth2 once a minute at
//!   most) and auth2's own limits; `trusted_proxies` set to the proxy's network gives each
//!   client its own limit again (SPEC §10).
//! - A token auth2 accepted lately (within [`KNOWN_GOOD_MEMORY`]) is never held back by the
//!   limit, so a guesser behind the same address (a NAT, a campus proxy) does not lock out
//!   users who were logged in; it is still validated as usual.
//!
//! Everything is keyed by the SHA-256 of the token, never the token.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use moka::future::Cache;
use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};

use super::{AuthError, Authenticator, Identity};

/// How long a rejected token is remembered (SPEC §8: a minute).
pub const REJECTION_MEMORY: Duration = Duration::from_secs(60);
/// How long a token auth2 accepted is exempt from the per-address limit.
pub const KNOWN_GOOD_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// Entries each memory holds at most, so a flood of random tokens cannot grow it unbounded.
const MEMORY_CAPACITY: u64 = 100_000;

/// The gate's settings.
#[derive(Clone, Debug)]
pub struct GateSettings {
    /// `auth_cache_secs`: how long a validated token is trusted (zero: not at all).
    pub valid_for: Duration,
    /// `auth_failures_per_minute`; `None`: no limit.
    pub failures_per_minute: Option<NonZeroU32>,
}

/// Counters the gate reports.
#[derive(Clone, Debug, Default)]
pub struct GateCounters {
    /// Validations answered from memory (accepted tokens).
    pub cache_hits: Counter,
    /// Rejections answered from memory, not sent to auth2.
    pub rejections_remembered: Counter,
    /// Requests refused with 429.
    pub throttled: Counter,
}

type Digest32 = [u8; 32];

/// Token validation with memory and a per-address limit.
pub struct Gate {
    inner: Arc<dyn Authenticator>,
    valid: Option<Cache<Digest32, Identity>>,
    rejected: Cache<Digest32, AuthError>,
    known_good: Cache<Digest32, ()>,
    limit: Option<Limit>,
    counters: GateCounters,
}

// By hand: the caches' own Debug would list every remembered user.
impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("inner", &self.inner)
            .field("valid", &self.valid.as_ref().map(Cache::entry_count))
            .field("rejected", &self.rejected.entry_count())
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The per-address limit and who is over it.
struct Limit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses over the limit, until when. Kept apart from the limiter because the limiter
    /// only counts failures, and cannot be asked without counting one.
    blocked: Cache<IpAddr, Instant>,
    /// Last time idle addresses were dropped from the limiter, in seconds since `epoch`.
    last_sweep: AtomicU64,
    epoch: Instant,
}

impl std::fmt::Debug for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limit")
            .field("addresses", &self.limiter.len())
            .finish_non_exhaustive()
    }
}

impl Limit {
    fn new(per_minute: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            blocked: Cache::builder()
                .max_capacity(MEMORY_CAPACITY)
                .time_to_live(Duration::from_secs(60))
                .build(),
            last_sweep: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    async fn blocked_for(&self, address: IpAddr) -> Option<Duration> {
        let until = self.blocked.get(&address).await?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Counts one failure of `address`; the wait when that puts it over the limit.
    async fn failed(&self, address: IpAddr) -> Option<Duration> {
        self.sweep();
        let not_until = self.limiter.check_key(&address).err()?;
        let wait = not_until
            .wait_time_from(DefaultClock::default().now())
            .max(Duration::from_secs(1));
        self.blocked.insert(address, Instant::now() + wait).await;
        Some(wait)
    }

    /// Drops addresses whose limit has recovered, at most once a minute, so the limiter's
    /// memory follows the addresses seen lately rather than every address ever seen.
    fn sweep(&self) {
        let now = self.epoch.elapsed().as_secs();
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now >= last + 60
            && self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.limiter.retain_recent();
        }
    }
}

/// The key an address is limited under: IPv4 as is, IPv6 by its /64.
fn limit_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

fn memory<V: Clone + Send + Sync + 'static>(ttl: Duration) -> Cache<Digest32, V> {
    Cache::builder()
        .max_capacity(MEMORY_CAPACITY)
        .time_to_live(ttl)
        .build()
}

impl Gate {
    /// A gate in front of `inner`.
    pub fn new(
        inner: Arc<dyn Authenticator>,
        settings: GateSettings,
        counters: GateCounters,
    ) -> Self {
        Self {
            inner,
            valid: (!settings.valid_for.is_zero()).then(|| memory(settings.valid_for)),
            rejected: memory(REJECTION_MEMORY),
            known_good: memory(KNOWN_GOOD_MEMORY),
            limit: settings.failures_per_minute.map(Limit::new),
            counters,
        }
    }

    /// The identity behind `token`, presented by `client`: the address its failures count
    /// against, or `None` when it cannot be told from other clients (see the module doc).
    pub async fn check(&self, token: &str, client: Option<IpAddr>) -> Result<Identity, AuthError> {
        let key: Digest32 = Sha256::digest(token.as_bytes()).into();
        if let Some(identity) = self.remembered_valid(&key).await {
            self.counters.cache_hits.inc();
            return Ok(identity);
        }
        if let Some(rejection) = self.rejected.get(&key).await {
            self.counters.rejections_remembered.inc();
            return Err(rejection);
        }
        let address = client.map(limit_key);
        let limit = self.limit.as_ref().zip(address);
        if let Some((limit, address)) = limit {
            if !self.known_good.contains_key(&key) {
                if let Some(retry_after) = limit.blocked_for(address).await {
                    self.counters.throttled.inc();
                    return Err(AuthError::Throttled { retry_after });
                }
            }
        }
        match self.inner.validate(token).await {
            Ok(identity) => {
                if let Some(valid) = &self.valid {
                    valid.insert(key, identity.clone()).await;
                }
                self.known_good.insert(key, ()).await;
                Ok(identity)
            }
            Err(rejection @ AuthError::Rejected { .. }) => {
                self.rejected.insert(key, rejection.clone()).await;
                match limit {
                    Some((limit, address)) => match limit.failed(address).await {
                        Some(retry_after) => {
                            self.counters.throttled.inc();
                            Err(AuthError::Throttled { retry_after })
                        }
                        None => Err(rejection),
                    },
                    None => Err(rejection),
                }
            }
            // auth2's own trouble says nothing about the token or the client.
            Err(other) => Err(other),
        }
    }

    async fn remembered_valid(&self, key: &Digest32) -> Option<Identity> {
        self.valid.as_ref()?.get(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_limited_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::from([0; 16]));
        let b: IpAddr = "2001:db8:1:2:bbbb::2"
            .parse()
            .unwrap_or(IpAddr::from([0; 16]));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap_or(IpAddr::from([0; 16]));
        assert_eq!(limit_key(mapped), IpAddr::from([192, 0, 2, 7]));
    }
}

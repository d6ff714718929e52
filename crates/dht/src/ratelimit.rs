//! Per-IP token bucket, checked before a datagram is parsed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per source IP. Memory is bounded: idle entries (buckets that have refilled,
/// which behave exactly like no entry) are swept out periodically ([`RateLimiter::sweep`]), so
/// the map holds only the IPs heard from in the last few seconds; and when `max_ips` are
/// tracked anyway, it is swept at once and, if none are idle, cleared outright, which at worst
/// lets a burst through once.
pub(crate) struct RateLimiter {
    per_sec: f64,
    burst: f64,
    max_ips: usize,
    ips: HashMap<IpAddr, Bucket>,
}

impl RateLimiter {
    pub fn new(per_sec: u32, burst: u32, max_ips: usize) -> Self {
        RateLimiter { per_sec: f64::from(per_sec), burst: f64::from(burst.max(1)), max_ips, ips: HashMap::new() }
    }

    /// Takes one token for `ip`; false when it has none left.
    pub fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if !self.ips.contains_key(&ip) && self.ips.len() >= self.max_ips {
            self.evict(now);
        }
        let (per_sec, burst) = (self.per_sec, self.burst);
        let b = self.ips.entry(ip).or_insert(Bucket { tokens: burst, last: now });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_sec).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets the IPs whose bucket has refilled (a node queried by many IPs over hours would
    /// otherwise keep one entry for each of them).
    pub fn sweep(&mut self, now: Instant) {
        let (per_sec, burst) = (self.per_sec, self.burst);
        self.ips.retain(|_, b| b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * per_sec < burst);
        if self.ips.capacity() > 4 * self.ips.len().max(16) {
            self.ips.shrink_to_fit();
        }
    }

    /// Number of IPs tracked.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ips.len()
    }

    fn evict(&mut self, now: Instant) {
        self.sweep(now);
        if self.ips.len() >= self.max_ips {
            self.ips.clear();
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(10, 5, 2);
        let ip: IpAddr = "10.0.0.1".parse().expect("ip literal");
        assert_eq!((0..10).filter(|_| rl.allow(t0, ip)).count(), 5);
        assert!(rl.allow(t0 + Duration::from_millis(100), ip), "one token back after 100 ms");
        // Bounded memory: a third IP evicts.
        for i in 0..100u8 {
            rl.allow(t0, IpAddr::from([10, 0, 1, i]));
        }
        assert!(rl.ips.len() <= 2);
    }

    #[test]
    fn idle_ips_are_swept() {
        let t0 = Instant::now();
        let mut rl = RateLimiter::new(10, 5, 1000);
        for i in 0..200u8 {
            rl.allow(t0, IpAddr::from([10, 0, 2, i]));
        }
        let busy: IpAddr = "10.0.3.1".parse().expect("ip literal");
        for _ in 0..5 {
            rl.allow(t0 + Duration::from_millis(850), busy);
        }
        assert_eq!(rl.len(), 201);
        // 0.5 s later the 200 one-datagram IPs have refilled; the busy one has not.
        rl.sweep(t0 + Duration::from_millis(900));
        assert_eq!(rl.len(), 1);
        assert!(!rl.allow(t0 + Duration::from_millis(900), busy), "the busy IP keeps its empty bucket");
    }
}

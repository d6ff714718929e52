//! Per-IP token bucket, checked before a datagram is parsed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per source IP. Memory is bounded: when `max_ips` are tracked, the map is
/// cleared of idle entries (full ones), and if none are idle it is cleared outright, which at
/// worst lets a burst through once.
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

    fn evict(&mut self, now: Instant) {
        let (per_sec, burst) = (self.per_sec, self.burst);
        self.ips.retain(|_, b| b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * per_sec < burst);
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
}

//! [`RateMeter`]: bytes per second over a sliding window of one-second buckets.

use std::collections::VecDeque;
use std::time::Instant;

/// Seconds of history kept.
const HISTORY: u64 = 30;

/// Counts bytes into one-second buckets measured from an origin instant.
#[derive(Debug, Clone)]
pub struct RateMeter {
    origin: Instant,
    buckets: VecDeque<(u64, u64)>,
    total: u64,
}

impl RateMeter {
    /// A meter whose second 0 starts at `origin`.
    pub fn new(origin: Instant) -> Self {
        RateMeter { origin, buckets: VecDeque::new(), total: 0 }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs()
    }

    /// Counts `bytes` at `now`.
    pub fn record(&mut self, now: Instant, bytes: u64) {
        let s = self.second(now);
        self.total += bytes;
        match self.buckets.back_mut() {
            Some((sec, n)) if *sec == s => *n += bytes,
            _ => self.buckets.push_back((s, bytes)),
        }
        while self.buckets.front().is_some_and(|&(sec, _)| sec + HISTORY < s) {
            self.buckets.pop_front();
        }
    }

    /// Bytes per second over the last `window` whole seconds before `now` plus the current
    /// partial second (so a fresh burst shows up at once).
    pub fn rate(&self, now: Instant, window: u64) -> u64 {
        let s = self.second(now);
        let window = window.clamp(1, HISTORY);
        let from = s.saturating_sub(window);
        let bytes: u64 = self.buckets.iter().filter(|&&(sec, _)| sec >= from).map(|&(_, n)| n).sum();
        // Do not divide by time that precedes the origin (a new meter).
        let span = window.min(s.max(1));
        bytes / span
    }

    /// Bytes counted since creation.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn window_rate() {
        #[allow(clippy::disallowed_methods)] // test origin
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0);
        for s in 0..10 {
            m.record(t0 + Duration::from_secs(s), 1000);
        }
        let now = t0 + Duration::from_secs(10);
        assert_eq!(m.rate(now, 5), 1000);
        assert_eq!(m.rate(now + Duration::from_secs(60), 5), 0);
        assert_eq!(m.total(), 10_000);
    }
}

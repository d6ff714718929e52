//! Request timeouts adapted from measured round-trip times (Jacobson/Karels, as in TCP).

use std::time::Duration;

pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    min: Duration,
    max: Duration,
}

impl RttEstimator {
    pub fn new(min: Duration, max: Duration) -> Self {
        RttEstimator { srtt: None, rttvar: Duration::ZERO, min, max }
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Records one measured round trip.
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// The soft timeout for the next request: srtt + 4·rttvar within [min, max]; max before
    /// any sample.
    pub fn timeout(&self) -> Duration {
        match self.srtt {
            None => self.max,
            Some(srtt) => (srtt + self.rttvar * 4).clamp(self.min, self.max),
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time
mod tests {
    use super::*;

    #[test]
    fn adapts_within_bounds() {
        let mut e = RttEstimator::new(Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(e.timeout(), Duration::from_secs(2));
        for _ in 0..20 {
            e.sample(Duration::from_millis(50));
        }
        assert_eq!(e.timeout(), Duration::from_millis(100), "clamped to the minimum");
        for _ in 0..50 {
            e.sample(Duration::from_millis(400));
        }
        let t = e.timeout();
        assert!(t >= Duration::from_millis(400) && t < Duration::from_millis(700), "{t:?}");
    }
}

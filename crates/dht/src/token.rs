//! Write tokens for `announce_peer`: a hash of the querier's IP and a secret that rotates every
//! few minutes; tokens made with the previous secret are still accepted (BEP 5).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

/// Token length on the wire.
pub(crate) const TOKEN_LEN: usize = 8;

pub(crate) struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    rotated_at: Instant,
    period: Duration,
}

impl Tokens {
    pub fn new(secret: [u8; 16], period: Duration, now: Instant) -> Self {
        Tokens { current: secret, previous: secret, rotated_at: now, period }
    }

    /// When the secret next rotates.
    pub fn next_rotation(&self) -> Instant {
        self.rotated_at + self.period
    }

    /// Rotates if due; `fresh` supplies the new secret.
    pub fn maybe_rotate(&mut self, now: Instant, fresh: impl FnOnce() -> [u8; 16]) {
        if now < self.next_rotation() {
            return;
        }
        // After two or more idle periods, the old current secret has expired as well.
        let idle_twice = now >= self.rotated_at + self.period * 2;
        self.previous = self.current;
        self.current = fresh();
        if idle_twice {
            self.previous = self.current;
        }
        self.rotated_at = now;
    }

    /// The token we hand to `ip`.
    pub fn make(&self, ip: IpAddr) -> [u8; TOKEN_LEN] {
        derive(&self.current, ip)
    }

    /// Whether `token` is one we gave to `ip` under the current or previous secret.
    pub fn check(&self, ip: IpAddr, token: &[u8]) -> bool {
        token == derive(&self.current, ip) || token == derive(&self.previous, ip)
    }
}

fn derive(secret: &[u8; 16], ip: IpAddr) -> [u8; TOKEN_LEN] {
    let mut h = Sha1::new();
    h.update(secret);
    match ip {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
    let digest = h.finalize();
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&digest[..TOKEN_LEN]);
    out
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take an arbitrary origin for virtual time
mod tests {
    use super::*;

    #[test]
    fn previous_secret_still_accepted_then_expires() {
        let t0 = Instant::now();
        let period = Duration::from_secs(300);
        let mut tokens = Tokens::new([1; 16], period, t0);
        let ip: IpAddr = "10.1.2.3".parse().expect("ip literal");
        let other: IpAddr = "10.1.2.4".parse().expect("ip literal");
        let tok = tokens.make(ip);
        assert!(tokens.check(ip, &tok));
        assert!(!tokens.check(other, &tok));
        tokens.maybe_rotate(t0 + period, || [2; 16]);
        assert!(tokens.check(ip, &tok), "previous secret accepted for one more period");
        tokens.maybe_rotate(t0 + period * 2, || [3; 16]);
        assert!(!tokens.check(ip, &tok), "two rotations later the token is dead");
        assert!(!tokens.check(ip, b"short"));
    }
}

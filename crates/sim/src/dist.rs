//! Random distributions the model draws from, by inverse transform on a seeded generator.
//!
//! Only what the model needs: Weibull (session and down times), log-normal (access delays),
//! exponential (jitter, arrivals). Each is a small value type with a `sample` method so the
//! parameters can be checked once, when the scenario is built.

use rand::Rng;

use crate::SimError;

/// A uniform draw in (0, 1]: never 0, so logarithms stay finite.
fn open01<R: Rng>(rng: &mut R) -> f64 {
    1.0 - rng.gen::<f64>()
}

/// A standard normal draw (Box–Muller; one of the pair is discarded, which keeps the
/// generator's consumption per draw fixed and the code simple).
pub fn std_normal<R: Rng>(rng: &mut R) -> f64 {
    let u1 = open01(rng);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Weibull distribution given by its median and shape (`k < 1`: heavy tail, as measured for
/// P2P session lengths).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weibull {
    scale: f64,
    shape: f64,
}

impl Weibull {
    /// A Weibull with this median and shape; both must be positive and finite.
    pub fn from_median(median: f64, shape: f64) -> Result<Self, SimError> {
        if !(median.is_finite() && median > 0.0) {
            return Err(SimError::invalid("median", format!("must be positive, got {median}")));
        }
        if !(shape.is_finite() && shape > 0.0) {
            return Err(SimError::invalid("shape", format!("must be positive, got {shape}")));
        }
        // median = scale · (ln 2)^(1/shape)
        Ok(Weibull { scale: median / std::f64::consts::LN_2.powf(1.0 / shape), shape })
    }

    /// One draw.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> f64 {
        self.scale * (-open01(rng).ln()).powf(1.0 / self.shape)
    }

    /// The mean, `scale · Γ(1 + 1/shape)`.
    pub fn mean(&self) -> f64 {
        self.scale * gamma(1.0 + 1.0 / self.shape)
    }
}

/// Log-normal distribution given by its median and the standard deviation of its logarithm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogNormal {
    /// ln(median).
    mu: f64,
    sigma: f64,
}

impl LogNormal {
    /// A log-normal with this median (> 0) and log-deviation (≥ 0).
    pub fn new(median: f64, sigma: f64) -> Self {
        LogNormal { mu: median.max(f64::MIN_POSITIVE).ln(), sigma: sigma.max(0.0) }
    }

    /// One draw.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> f64 {
        (self.mu + self.sigma * std_normal(rng)).exp()
    }
}

/// An exponential draw with this mean.
pub fn exponential<R: Rng>(rng: &mut R, mean: f64) -> f64 {
    -mean * open01(rng).ln()
}

/// Γ(x) for x > 0 (Lanczos approximation, g = 7, n = 9; relative error below 1e-13).
pub fn gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return std::f64::consts::PI / ((std::f64::consts::PI * x).sin() * gamma(1.0 - x));
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    (std::f64::consts::TAU).sqrt() * t.powf(x + 0.5) * (-t).exp() * a
}

/// The p-quantile (0 ≤ p ≤ 1) of an already sorted slice, nearest rank; 0 when empty.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn median_of(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        quantile(&v, 0.5)
    }

    #[test]
    fn weibull_median_and_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let w = Weibull::from_median(100.0, 0.5).expect("valid");
        let v: Vec<f64> = (0..200_000).map(|_| w.sample(&mut rng)).collect();
        let m = median_of(v.clone());
        assert!((m - 100.0).abs() < 3.0, "median {m}");
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!((mean / w.mean() - 1.0).abs() < 0.05, "mean {mean} vs {}", w.mean());
        assert!(Weibull::from_median(-1.0, 0.5).is_err());
        assert!(Weibull::from_median(1.0, 0.0).is_err());
    }

    #[test]
    fn lognormal_median() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let d = LogNormal::new(10.0, 1.0);
        let m = median_of((0..100_000).map(|_| d.sample(&mut rng)).collect());
        assert!((m - 10.0).abs() < 0.3, "median {m}");
    }

    #[test]
    fn gamma_known_values() {
        assert!((gamma(1.0) - 1.0).abs() < 1e-12);
        assert!((gamma(5.0) - 24.0).abs() < 1e-9);
        assert!((gamma(3.0) - 2.0).abs() < 1e-12, "Γ(1 + 1/0.5)");
        assert!((gamma(0.5) - std::f64::consts::PI.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }
}

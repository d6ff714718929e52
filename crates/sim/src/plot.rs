//! Hand-written SVG charts (no plotting dependency): line charts with optional log axes, and
//! bar charts. Enough for latency CDFs, hop histograms and parameter sweeps.

use std::fmt::Write;

use crate::dist::quantile;
use crate::metrics::LookupRecord;

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points, drawn in order.
    pub points: Vec<(f64, f64)>,
}

const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A linear or logarithmic axis mapping data to pixels.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, log: bool) -> Axis {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = (if log { 1.0 } else { 0.0 }, 1.0);
        }
        if !log {
            lo = lo.min(0.0);
        }
        if hi <= lo {
            hi = if log { lo * 10.0 } else { lo + 1.0 };
        }
        if !log {
            hi = (hi / nice_step(hi - lo)).ceil() * nice_step(hi - lo);
        }
        Axis { lo, hi, log }
    }

    /// Position in [0, 1].
    fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.max(self.lo).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            // Decades, with 2 and 5 in between when the axis spans few of them.
            let few = self.hi / self.lo < 1e3;
            let mut t = 10f64.powf(self.lo.log10().floor());
            let mut out = Vec::new();
            while t <= self.hi * 1.0001 {
                for m in if few { &[1.0, 2.0, 5.0][..] } else { &[1.0][..] } {
                    let v = t * m;
                    if v >= self.lo * 0.9999 && v <= self.hi * 1.0001 {
                        out.push(v);
                    }
                }
                t *= 10.0;
            }
            out
        } else {
            let step = nice_step(self.hi - self.lo);
            let n = ((self.hi - self.lo) / step).round() as i32;
            (0..=n).map(|i| self.lo + step * f64::from(i)).collect()
        }
    }
}

/// A round tick step (1, 2, 2.5 or 5 times a power of ten) giving about five ticks.
fn nice_step(range: f64) -> f64 {
    let raw = (range / 5.0).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw * 0.999).unwrap_or(10.0 * mag)
}

fn label(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{:.0}M", v / 1e6)
    } else if v.abs() >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

/// Title, plot area, grid and tick labels; `x: None` leaves the x axis to the caller (bars).
fn frame(svg: &mut String, title: &str, xl: &str, yl: &str, x: Option<&Axis>, y: &Axis) {
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="22" font-size="15" text-anchor="middle">{}</text><rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#,
        LEFT + pw / 2.0,
        esc(title)
    );
    if let Some(x) = x {
        for t in x.ticks() {
            let px = LEFT + x.frac(t) * pw;
            let _ = write!(
                svg,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                TOP + ph,
                TOP + ph + 16.0,
                label(t)
            );
        }
    }
    for t in y.ticks() {
        let py = TOP + ph - y.frac(t) * ph;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 6.0,
            py + 4.0,
            label(t)
        );
    }
    let _ =
        write!(svg, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, LEFT + pw / 2.0, H - 12.0, esc(xl));
    let _ = write!(
        svg,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        esc(yl)
    );
}

/// A line chart with one line per series and a legend on the right.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series], log_x: bool, log_y: bool) -> String {
    let x = Axis::new(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)), log_x);
    let y = Axis::new(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), log_y);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let mut svg = String::new();
    frame(&mut svg, title, x_label, y_label, Some(&x), &y);
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite() && (!log_x || p.0 > 0.0) && (!log_y || p.1 > 0.0))
            .map(|p| format!("{:.1},{:.1}", LEFT + x.frac(p.0) * pw, TOP + ph - y.frac(p.1) * ph))
            .collect();
        let _ = write!(svg, r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#, pts.join(" "));
        if pts.len() <= 12 {
            for p in &pts {
                let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = write!(svg, r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>"#);
            }
        }
        let ly = TOP + 14.0 + 18.0 * i as f64;
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="4" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            W - RIGHT + 10.0,
            ly - 4.0,
            W - RIGHT + 28.0,
            ly + 1.0,
            esc(&s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A bar chart, one bar per (label, value).
pub fn bar_chart(title: &str, x_label: &str, y_label: &str, bars: &[(String, f64)]) -> String {
    let y = Axis::new(bars.iter().map(|b| b.1), false);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let mut svg = String::new();
    frame(&mut svg, title, x_label, "", None, &y);
    let bw = pw / bars.len().max(1) as f64;
    for (i, (name, v)) in bars.iter().enumerate() {
        let h = y.frac(*v) * ph;
        let bx = LEFT + bw * i as f64;
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"/>"#,
            bx + bw * 0.1,
            TOP + ph - h,
            bw * 0.8,
            COLORS[0]
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            bx + bw / 2.0,
            TOP + ph + 30.0,
            esc(name)
        );
    }
    let _ = write!(svg, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, W - RIGHT + 10.0, TOP + 14.0, esc(y_label));
    svg.push_str("</svg>\n");
    svg
}

/// The CDF of lookup latencies (finished, judged lookups), log-scaled time.
pub fn latency_cdf(records: &[LookupRecord], title: &str) -> String {
    let mut v: Vec<f64> = records.iter().filter(|r| r.done && !r.aborted).map(|r| r.latency_ms.max(0.1)).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len().max(1) as f64;
    let step = (v.len() / 400).max(1);
    let points = v
        .iter()
        .enumerate()
        .step_by(step)
        .map(|(i, x)| (*x, (i + 1) as f64 / n))
        .chain(v.last().map(|x| (*x, 1.0)))
        .collect();
    let p = |q| quantile(&v, q);
    let name = format!("p50 {:.0}, p99 {:.0}", p(0.5), p(0.99));
    line_chart(title, "lookup latency (ms, log)", "fraction of lookups", &[Series { name, points }], true, false)
}

/// The histogram of hop counts.
pub fn hops_histogram(records: &[LookupRecord], title: &str) -> String {
    let done: Vec<u32> = records.iter().filter(|r| r.done && !r.aborted).map(|r| r.hops).collect();
    let max = done.iter().copied().max().unwrap_or(0).min(30);
    let bars: Vec<(String, f64)> =
        (0..=max).map(|h| (h.to_string(), done.iter().filter(|x| **x == h).count() as f64)).collect();
    bar_chart(title, "hops", "lookups", &bars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_svg() {
        let s = Series { name: "a<b".into(), points: vec![(1.0, 0.5), (10.0, 0.9), (100.0, 1.0)] };
        let svg = line_chart("t", "x", "y", &[s], true, false);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a&lt;b") && svg.contains("polyline"));
        let bars = bar_chart("h", "hops", "n", &[("1".into(), 3.0), ("2".into(), 5.0)]);
        assert_eq!(bars.matches("<rect").count(), 2 + 2, "background, frame and two bars");
        let empty = latency_cdf(&[], "empty");
        assert!(empty.contains("</svg>"));
    }
}

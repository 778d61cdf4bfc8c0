//! The policy.
//!
//! Target tracking: the replicas needed are `ceil(Σ metric / target)`, where Σ metric
//! is the metric summed over the ready replicas (replicas still starting contribute
//! nothing, so a scale-up in progress is not asked for twice: the need is compared
//! with the desired count, which already includes them).
//!
//! - Stable mode averages Σ metric over `stable_window` and ignores changes within
//!   `tolerance` of the target. It scales down only to the highest count the short
//!   window needed during the last `scale_down_delay` (so a short dip does not remove
//!   replicas a returning load needs, and replicas go one delay after the load left,
//!   not a delay plus a stable window). When that highest count over the last third
//!   of the delay is half the current count or less, the load has plainly dropped
//!   (noise does not halve it) and replicas go after that third.
//! - Panic mode (Knative's idea) starts when the short `panic_window` (its average,
//!   or its newest sample when that is higher) asks for `panic_threshold` times the
//!   ready replicas or more: the count goes up at once to what it asks, and does not
//!   go down until the load has been below the threshold for a whole stable window.
//! - Each decision moves at most to `max(2 × current, current + 4)` up and to half
//!   the current count down, and stays within `min..=max`.
//! - With no sample in the stable window nothing changes; after a start (or a control
//!   plane restart) there is no scale-down until a full stable window of fresh data.

use std::collections::VecDeque;
use std::time::Duration;

/// The settings of one service's autoscaler.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Fewest replicas.
    pub min: u32,
    /// Most replicas.
    pub max: u32,
    /// The metric's name, for reasons (`concurrency`, `rps`, `cpu`, `latency_p95`).
    pub metric: String,
    /// Metric per ready replica to aim for.
    pub target: f64,
    /// Window of the stable average.
    pub stable_window: Duration,
    /// Window of the panic average.
    pub panic_window: Duration,
    /// Panic when the panic window asks for this many times the ready replicas.
    pub panic_threshold: f64,
    /// Relative deviation from the target that changes nothing.
    pub tolerance: f64,
    /// How long a lower count must be recommended before replicas are removed.
    pub scale_down_delay: Duration,
}

impl Config {
    /// The defaults for `min..=max` replicas at `target` per replica.
    pub fn new(min: u32, max: u32, metric: &str, target: f64) -> Config {
        Config {
            min,
            max,
            metric: metric.to_string(),
            target,
            stable_window: Duration::from_secs(30),
            panic_window: Duration::from_secs(3),
            panic_threshold: 2.0,
            tolerance: 0.1,
            scale_down_delay: Duration::from_secs(30),
        }
    }
}

/// One observation: the metric summed over the ready replicas.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When.
    pub at: Duration,
    /// Σ metric over the ready replicas.
    pub total: f64,
    /// Ready replicas then.
    pub ready: u32,
}

/// What the policy wants.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Replicas to run.
    pub desired: u32,
    /// Why, when it differs from the current count.
    pub reason: Option<String>,
    /// In panic mode.
    pub panic: bool,
}

impl Decision {
    /// The count stays as it is.
    pub fn unchanged(desired: u32) -> Decision {
        Decision {
            desired,
            reason: None,
            panic: false,
        }
    }
}

/// Keeps `sample`, and no more than the newest `limit` samples.
pub(crate) fn remember(samples: &mut VecDeque<Sample>, sample: Sample, limit: usize) {
    samples.push_back(sample);
    while samples.len() > limit {
        samples.pop_front();
    }
}

/// The autoscaler of one service.
#[derive(Clone, Debug)]
pub struct Autoscaler {
    config: Config,
    samples: VecDeque<Sample>,
    /// Recommendations of the stable mode, for the scale-down delay.
    recommendations: VecDeque<(Duration, u32)>,
    started: Duration,
    panic_until: Option<Duration>,
}

impl Autoscaler {
    /// An autoscaler starting at `now`.
    pub fn new(config: Config, now: Duration) -> Autoscaler {
        Autoscaler {
            config,
            samples: VecDeque::new(),
            recommendations: VecDeque::new(),
            started: now,
            panic_until: None,
        }
    }

    /// Its settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Records a sample.
    pub fn record(&mut self, sample: Sample) {
        self.samples.push_back(sample);
        let keep = self.config.stable_window.max(self.config.panic_window);
        while self
            .samples
            .front()
            .is_some_and(|s| sample.at.saturating_sub(s.at) > keep)
        {
            self.samples.pop_front();
        }
    }

    fn average(&self, now: Duration, window: Duration) -> Option<(f64, usize)> {
        let inside: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| now.saturating_sub(s.at) < window)
            .map(|s| s.total)
            .collect();
        (!inside.is_empty()).then(|| {
            (
                inside.iter().sum::<f64>() / inside.len() as f64,
                inside.len(),
            )
        })
    }

    fn need(&self, total: f64) -> u32 {
        (total / self.config.target).ceil().max(0.0) as u32
    }

    fn clamp(&self, n: u32) -> u32 {
        n.clamp(self.config.min, self.config.max.max(self.config.min))
    }

    /// Decides the replica count at `now`, given the count currently desired (ready
    /// and starting replicas together) and how many are ready.
    pub fn decide(&mut self, now: Duration, current: u32, ready: u32) -> Decision {
        let c = &self.config;
        let keep = |desired: u32, panic: bool| Decision {
            desired,
            reason: None,
            panic,
        };
        let Some((stable_avg, _)) = self.average(now, c.stable_window) else {
            // No data: hold, within bounds.
            let held = self.clamp(current);
            let reason = (held != current)
                .then(|| format!("{current}→{held}: outside min {} / max {}", c.min, c.max));
            return Decision {
                desired: held,
                reason,
                panic: false,
            };
        };
        // The panic level: the short window's average, or the newest sample when it
        // is higher, so a jump is answered on the tick that sees it rather than as
        // the window fills.
        let newest = self
            .samples
            .back()
            .filter(|s| now.saturating_sub(s.at) < c.panic_window)
            .map(|s| s.total);
        let panic_avg = self
            .average(now, c.panic_window)
            .map(|(a, _)| a.max(newest.unwrap_or(0.0)));
        let stable_need = self.need(stable_avg);
        let panic_need = panic_avg.map(|a| self.need(a)).unwrap_or(0);

        // Panic: the short window asks for a multiple of what is ready.
        let capacity = f64::from(ready.max(1));
        if f64::from(panic_need) >= c.panic_threshold * capacity && panic_need > current {
            self.panic_until = Some(now + c.stable_window);
        }
        let panicking = self.panic_until.is_some_and(|until| now < until);
        if !panicking {
            self.panic_until = None;
        }

        // The stable recommendation, with tolerance.
        let ratio = stable_avg / (c.target * f64::from(current.max(1)));
        let stable_rec = if current > 0 && (ratio - 1.0).abs() <= c.tolerance {
            current
        } else {
            stable_need
        };
        // What the load of the last few seconds needs, kept for the scale-down delay:
        // replicas go once no moment of the delay needed them (the stable average
        // would add its own window of lag on top of the delay).
        let short_need = if panic_avg.is_some() {
            panic_need
        } else {
            stable_rec
        };
        self.recommendations.push_back((now, short_need));
        while self
            .recommendations
            .front()
            .is_some_and(|(at, _)| now.saturating_sub(*at) > c.scale_down_delay)
        {
            self.recommendations.pop_front();
        }

        // Down only with a full window of fresh data behind it, to the highest count
        // the short window needed during the delay; or, when that count over the
        // last third of the delay is half the current one or less, to it: a load
        // that halved is no noise (a ±25 % wobble never halves it).
        let highest = |span: Duration| {
            self.recommendations
                .iter()
                .filter(|(at, _)| now.saturating_sub(*at) <= span)
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(current)
        };
        let settled = now.saturating_sub(self.started) >= c.stable_window.max(c.scale_down_delay);
        let recent = highest(c.scale_down_delay / 3);
        let halved = settled && recent.saturating_mul(2) <= current;
        let mut want = if panicking {
            // Only up while panicking.
            current.max(panic_need).max(stable_rec)
        } else if halved {
            recent
        } else if stable_rec >= current {
            // Not above what the short window needs: the stable average lags a
            // falling load and would add replicas it no longer asks for.
            stable_rec.min(current.max(short_need))
        } else if settled {
            highest(c.scale_down_delay).min(current)
        } else {
            current
        };

        // Rate limits.
        let up_limit = (current.saturating_mul(2)).max(current + 4);
        let down_limit = current / 2;
        want = want.min(up_limit).max(down_limit);
        let desired = self.clamp(want);
        if desired == current {
            return keep(desired, panicking);
        }
        let short = (panicking && desired > current) || (halved && desired < current);
        let (shown, window) = if short {
            (panic_avg.unwrap_or(stable_avg), "panic")
        } else {
            (stable_avg, "stable")
        };
        let cmp = if desired > current { ">" } else { "<" };
        let reason = format!(
            "{current}→{desired}: {} {shown:.1} {cmp} {current} × {} ({window} window)",
            c.metric, c.target
        );
        Decision {
            desired,
            reason: Some(reason),
            panic: panicking,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at: u64, total: f64, ready: u32) -> Sample {
        Sample {
            at: Duration::from_secs(at),
            total,
            ready,
        }
    }

    #[test]
    fn holds_without_data() {
        let mut a = Autoscaler::new(Config::new(1, 10, "concurrency", 10.0), Duration::ZERO);
        let d = a.decide(Duration::from_secs(100), 3, 3);
        assert_eq!((d.desired, d.reason), (3, None));
        let d = a.decide(Duration::from_secs(100), 20, 20);
        assert_eq!(d.desired, 10);
    }

    #[test]
    fn reason_says_why() {
        let mut a = Autoscaler::new(Config::new(1, 10, "concurrency", 10.0), Duration::ZERO);
        for t in 0..40 {
            a.record(s(t, 30.0, 2));
        }
        let d = a.decide(Duration::from_secs(40), 2, 2);
        assert_eq!(d.desired, 3);
        assert_eq!(
            d.reason.as_deref(),
            Some("2→3: concurrency 30.0 > 2 × 10 (stable window)")
        );
    }
}

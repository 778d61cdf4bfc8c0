//! The autoscalers shoal is measured against, emulated from their documented defaults
//! so that one harness can drive all three with the same actuator:
//!
//! - [`Hpa`]: Kubernetes' HorizontalPodAutoscaler: a decision every 15 s,
//!   `desired = ceil(current × metric / target)` with a 0.1 tolerance, scale-up
//!   limited to +100 % or +4 pods per 15 s (whichever is more), scale-down to the
//!   highest recommendation of the last 300 s.
//! - [`Kpa`]: Knative's autoscaler: a decision every 2 s, a 60 s stable and a 6 s panic
//!   window, panic at twice the ready capacity, only up while panicking.

use std::collections::VecDeque;
use std::time::Duration;

use crate::policy::{remember, Autoscaler, Config, Decision, Sample};

/// Something that turns samples into a replica count.
pub trait Policy: Send {
    /// Records a sample.
    fn record(&mut self, sample: Sample);
    /// The replica count at `now`, given the count desired so far and the ready ones.
    fn decide(&mut self, now: Duration, current: u32, ready: u32) -> Decision;
    /// Its settings.
    fn config(&self) -> &Config;
}

impl Policy for Autoscaler {
    fn record(&mut self, sample: Sample) {
        Autoscaler::record(self, sample)
    }

    fn decide(&mut self, now: Duration, current: u32, ready: u32) -> Decision {
        Autoscaler::decide(self, now, current, ready)
    }

    fn config(&self) -> &Config {
        Autoscaler::config(self)
    }
}

/// A peer's decision, with a reason when the count changes.
fn decision(policy: &str, c: &Config, total: f64, current: u32, want: u32) -> Decision {
    Decision {
        desired: want,
        reason: (want != current).then(|| {
            format!(
                "{current}\u{2192}{want} ({policy}): {} {total:.1} for target {} per replica",
                c.metric, c.target
            )
        }),
        panic: false,
    }
}

/// Average of `total` over the samples younger than `window`.
fn average(samples: &VecDeque<Sample>, now: Duration, window: Duration) -> Option<f64> {
    let inside: Vec<f64> = samples
        .iter()
        .filter(|s| now.saturating_sub(s.at) < window)
        .map(|s| s.total)
        .collect();
    (!inside.is_empty()).then(|| inside.iter().sum::<f64>() / inside.len() as f64)
}

/// Kubernetes' HPA with its defaults.
pub struct Hpa {
    config: Config,
    samples: VecDeque<Sample>,
    last_sync: Option<Duration>,
    recommendations: VecDeque<(Duration, u32)>,
}

impl Hpa {
    /// An HPA with `config`'s bounds, metric and target (its windows are the HPA's).
    pub fn new(config: Config) -> Hpa {
        Hpa {
            config,
            samples: VecDeque::new(),
            last_sync: None,
            recommendations: VecDeque::new(),
        }
    }
}

impl Policy for Hpa {
    fn record(&mut self, sample: Sample) {
        remember(&mut self.samples, sample, 120);
    }

    fn decide(&mut self, now: Duration, current: u32, ready: u32) -> Decision {
        const SYNC: Duration = Duration::from_secs(15);
        let unchanged = Decision::unchanged(current);
        if self.last_sync.is_some_and(|t| now.saturating_sub(t) < SYNC) {
            return unchanged;
        }
        self.last_sync = Some(now);
        // The metrics pipeline reports about one sync period of data.
        let Some(total) = average(&self.samples, now, SYNC) else {
            return unchanged;
        };
        let per_ready = total / f64::from(ready.max(1));
        let ratio = per_ready / self.config.target;
        let mut rec = if (ratio - 1.0).abs() <= 0.1 {
            current
        } else {
            // Not-ready pods count as zero on scale-up: the need over the ready ones.
            (f64::from(ready.max(1)) * ratio).ceil() as u32
        };
        self.recommendations.push_back((now, rec));
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > Duration::from_secs(300))
        {
            self.recommendations.pop_front();
        }
        if rec < current {
            rec = self
                .recommendations
                .iter()
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(current)
                .min(current);
        } else {
            rec = rec.min((current * 2).max(current + 4));
        }
        let want = rec.clamp(self.config.min, self.config.max);
        decision("hpa", &self.config, total, current, want)
    }

    fn config(&self) -> &Config {
        &self.config
    }
}

/// Knative's KPA with its defaults.
pub struct Kpa {
    config: Config,
    samples: VecDeque<Sample>,
    last_tick: Option<Duration>,
    panic_since: Option<Duration>,
}

impl Kpa {
    /// A KPA with `config`'s bounds, metric and target (its windows are the KPA's).
    pub fn new(config: Config) -> Kpa {
        Kpa {
            config,
            samples: VecDeque::new(),
            last_tick: None,
            panic_since: None,
        }
    }
}

impl Policy for Kpa {
    fn record(&mut self, sample: Sample) {
        remember(&mut self.samples, sample, 120);
    }

    fn decide(&mut self, now: Duration, current: u32, ready: u32) -> Decision {
        const TICK: Duration = Duration::from_secs(2);
        const STABLE: Duration = Duration::from_secs(60);
        const PANIC: Duration = Duration::from_secs(6);
        let unchanged = Decision::unchanged(current);
        if self.last_tick.is_some_and(|t| now.saturating_sub(t) < TICK) {
            return unchanged;
        }
        self.last_tick = Some(now);
        let (Some(stable), Some(panic)) = (
            average(&self.samples, now, STABLE),
            average(&self.samples, now, PANIC),
        ) else {
            return unchanged;
        };
        let stable_want = (stable / self.config.target).ceil() as u32;
        let panic_want = (panic / self.config.target).ceil() as u32;
        if f64::from(panic_want) >= 2.0 * f64::from(ready.max(1)) {
            self.panic_since = Some(now);
        } else if self
            .panic_since
            .is_some_and(|t| now.saturating_sub(t) >= STABLE)
        {
            self.panic_since = None;
        }
        let (want, total) = if self.panic_since.is_some() {
            (current.max(panic_want), panic)
        } else {
            (stable_want, stable)
        };
        let want = want.clamp(self.config.min, self.config.max);
        let mut d = decision("kpa", &self.config, total, current, want);
        d.panic = self.panic_since.is_some();
        d
    }

    fn config(&self) -> &Config {
        &self.config
    }
}

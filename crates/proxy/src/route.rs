//! Everything one published port needs on the request path: its replicas, its
//! settings, its retry budget and its counters.

use std::sync::Arc;

use crate::backends::Backends;
use crate::budget::Budget;
use crate::config::LbConfig;
use crate::metrics::Stats;

/// Everything one published port needs on the request path.
pub struct Route {
    /// The replicas.
    pub backends: Arc<Backends>,
    /// The settings.
    pub config: LbConfig,
    /// The retry budget.
    pub(crate) budget: Budget,
    /// Every request through the port, including those no replica took.
    pub stats: Stats,
}

impl Route {
    /// A route over `backends` with `config`.
    pub fn new(backends: Arc<Backends>, config: LbConfig) -> Route {
        let budget = Budget::new(config.retry_ratio, 10.0);
        Route {
            backends,
            config,
            budget,
            stats: Stats::default(),
        }
    }
}

//! shoal's control plane: it reconciles a Compose project onto a container runtime and
//! keeps the published ports pointed at the ready replicas.
//!
//! # Layout
//! - [`control`]: the main loop, commands (scale, shutdown) and status.
//! - [`autoscale`]: the autoscaler's step: metrics from the balancer into the policy.
//! - [`reconcile`]: one level-triggered pass: infrastructure, then services in
//!   dependency order; each replica number a slot, started, restarted, replaced or
//!   removed, and its rollout carried out (`reconcile/rolling.rs`).
//! - [`health`]: each replica's phase and restart count.
//! - [`event`]: typed events: the log line, `shoal ps`, `shoal events` and the
//!   events file, from one value per kind.
//! - [`restart`]: the restart policy and its crash-loop backoff.
//! - [`revision`]: every applied configuration of a service, kept in the state
//!   directory with its last rollout.
//! - [`rollout`]: rolling updates as a state machine: slots in, actions out.
//! - [`metrics`]: the Prometheus endpoint, every series named in one place.
//! - [`clock`]: time behind a seam, faked in tests.
//! - [`order`]: dependency order.
//! - [`probe`]: the control plane's own health probes (`x-shoal.health`).
//! - [`desired`]: replica counts set by hand, persisted in the state directory.
//! - [`down`]: tearing a project down by its labels.
//! - [`routes`]: the published ports and the replicas behind them; draining.
//! - [`tasks`]: starts, drains and stops run beside the reconcile passes.
//!
//! State lives in the engine (labels); the control plane can be killed at any moment
//! and, restarted, adopts what runs. It never removes a named volume unless told to.

pub mod autoscale;
pub mod clock;
pub mod collect;
pub mod control;
pub mod desired;
pub mod down;
pub mod event;
pub mod forward;
pub mod health;
pub mod metrics;
pub mod order;
pub mod probe;
pub mod reconcile;
pub mod restart;
pub mod revision;
pub mod rollout;
pub mod routes;
pub mod status;
pub mod tasks;

pub use control::{Command, ControlPlane, Handle, Lifecycle, Metrics, RolloutCommand};
pub use status::{ReplicaStatus, RolloutStatus, ServiceStatus, Status};

/// What stops the control plane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] shoal_runtime::Error),
    /// A published port could not be bound.
    #[error("cannot listen on {0}: {1}\n  hint: another process holds this port; stop it or change the published port")]
    Bind(String, #[source] std::io::Error),
    /// The balancer's worker threads could not start.
    #[error("cannot start the balancer's threads: {0}\n  hint: SHOAL_PROXY_THREADS, when set, is a number of threads")]
    DataPath(#[source] std::io::Error),
    /// The state directory could not be read or written.
    #[error("state directory {0}: {1}")]
    State(std::path::PathBuf, #[source] std::io::Error),
}

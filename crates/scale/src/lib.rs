//! shoal's autoscaling policy, as pure, deterministic code: samples of a load metric
//! go in, a desired replica count (with its reason) comes out. Time is a plain
//! `Duration` the caller supplies, so tests run hours of simulated load in
//! milliseconds.
//!
//! # Layout
//! - [`policy`]: the [`Autoscaler`]: target tracking over a stable window, a panic
//!   window for sudden load, tolerance, scale-down delay, rate limits, clamping.
//! - [`peers`]: Kubernetes' HPA and Knative's KPA emulated from their defaults, and the
//!   [`Policy`] trait all three share, so one harness drives them alike.
//!
//! This crate does no I/O and reads no clock.

pub mod peers;
pub mod policy;

pub use peers::{Hpa, Kpa, Policy};
pub use policy::{Autoscaler, Config, Decision, Sample};

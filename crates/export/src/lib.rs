//! The same Compose project beyond one host.
//!
//! [`kubernetes`] writes a loaded project as Kubernetes manifests, typed with
//! k8s-openapi: workloads with probes, rolling updates and autoscalers from what shoal
//! knows of each service, and a warning, located at `file:line:col`, for everything
//! that has no Kubernetes equivalent.

pub mod kubernetes;

//! Loads Compose files into a typed, validated [`Project`].
//!
//! The YAML is parsed with saphyr's spanned events, so every node keeps its file, line
//! and column; interpolation, merging and typing are done here, by the Compose
//! Specification's rules, so that every mistake is reported as `file:line:col`, with
//! the YAML path, what was expected and a hint.
//!
//! # Layout
//! - [`yaml`]: the position-keeping YAML tree (anchors, `<<` merge keys, tags).
//! - [`interpolate`]: `${VAR:-default}` and friends.
//! - [`dotenv`]: `.env` and `env_file` files.
//! - `merge`: several files, overrides and `extends`.
//! - `convert`, `service`: typing into [`model`], collecting errors.
//! - `validate`: cross-references, cycles, port conflicts.
//! - [`output`]: the normalized project as YAML or JSON (`shoal config`).
//! - [`load`]: the pipeline that runs the steps above.
//!
//! This crate never touches the container engine: loading a project creates nothing.

pub mod dotenv;
pub mod error;
pub mod interpolate;
pub mod load;
pub mod model;
pub mod output;
pub mod syntax;
pub mod yaml;

mod convert;
mod merge;
mod service;
mod shape;
mod validate;

pub use error::{LoadError, SpecError};
pub use load::{load, Loaded, Options};
pub use model::*;

/// Service keys beyond the modelled ones that shoal's runtime applies to containers.
/// Any other key of the specification is accepted, printed by `shoal config`, and
/// ignored at run time with a warning.
pub const ENGINE_KEYS: &[&str] = &[
    "cap_add",
    "cap_drop",
    "privileged",
    "init",
    "tty",
    "stdin_open",
    "extra_hosts",
    "read_only",
    "sysctls",
    "dns",
    "tmpfs",
    "shm_size",
    "security_opt",
    "group_add",
    "logging",
];

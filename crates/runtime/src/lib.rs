//! The container runtime shoal drives, behind the [`Runtime`] trait.
//!
//! # Layout
//! - [`docker`]: the implementation on the Docker Engine API (bollard).
//! - [`fake`]: an in-memory runtime for tests of the layers above.
//! - [`container`]: what a replica's container should be, made from a service.
//! - `context`: the build context tarball, honouring `.dockerignore`.
//!
//! This crate speaks only to the engine's API, never to the `docker` CLI, and it keeps
//! no state of its own: everything it knows it reads back from the engine, by label.

pub mod container;
pub mod docker;
pub mod fake;
mod logstream;

mod context;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::stream::BoxStream;

pub use container::{ContainerSpec, MountSpec};
pub use docker::Docker;
pub use fake::Fake;

/// Label naming the project a resource belongs to.
pub const LABEL_PROJECT: &str = "io.shoal.project";
/// Label naming the service of a container.
pub const LABEL_SERVICE: &str = "io.shoal.service";
/// Label with the replica number (1-based) of a container.
pub const LABEL_REPLICA: &str = "io.shoal.replica";
/// Label with the hash of the service configuration a container was made from.
pub const LABEL_CONFIG_HASH: &str = "io.shoal.config-hash";
/// Label with the number of the service revision a container was made from.
pub const LABEL_REVISION: &str = "io.shoal.revision";
/// Label with a container's stop grace period in seconds, so that `down` honours it
/// without the Compose file.
pub const LABEL_STOP_GRACE: &str = "io.shoal.stop-grace";
/// Label with the key a network or volume has in the Compose file.
pub const LABEL_KEY: &str = "io.shoal.key";
/// Marks a one-off container of `shoal run`: never a replica, never balanced.
pub const LABEL_ONEOFF: &str = "io.shoal.oneoff";

/// What can go wrong talking to a runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine did not answer at all.
    #[error("cannot reach the Docker Engine at {endpoint}: {reason}\n  hint: start the engine, or point DOCKER_HOST at it")]
    Unreachable {
        /// What was tried (DOCKER_HOST or the default socket).
        endpoint: String,
        /// Why it failed.
        reason: String,
    },
    /// The thing asked about does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// An image build failed; `output` is the engine's build log.
    #[error("building {image} failed: {message}")]
    Build {
        /// The image being built.
        image: String,
        /// The engine's error.
        message: String,
        /// Everything the build printed.
        output: String,
    },
    /// The build context could not be read.
    #[error("cannot read the build context {path}: {source}")]
    Context {
        /// The context directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The engine refused a request.
    #[error("{action}: {message}")]
    Engine {
        /// What shoal was doing.
        action: String,
        /// What the engine said.
        message: String,
    },
}

/// Result of runtime calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A container's lifecycle state, as the engine reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Created, never started.
    Created,
    /// Running (or paused).
    Running,
    /// Restarting under the engine's own policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Exited.
    Exited,
    /// Dead.
    Dead,
}

/// The engine's healthcheck status of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Inside the start period, or no check has finished yet.
    Starting,
    /// The last `retries` checks passed.
    Healthy,
    /// `retries` checks in a row failed.
    Unhealthy,
}

impl Health {
    /// Its name, as the engine says it.
    pub fn name(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// What shoal knows of a container it reads back from the engine.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ContainerInfo {
    /// The image it was created from, as named.
    pub image: String,
    /// Running, but its processes frozen (`shoal pause`).
    pub paused: bool,
    /// Engine id.
    pub id: String,
    /// Name, without the leading `/`.
    pub name: String,
    /// Its service (label).
    pub service: String,
    /// Its replica number (label).
    pub replica: u32,
    /// Configuration hash it was made from (label).
    pub config_hash: String,
    /// Lifecycle state.
    pub state: State,
    /// Health, when the container has a healthcheck.
    pub health: Option<Health>,
    /// Exit code of the last run, when it exited.
    pub exit_code: Option<i64>,
    /// Addresses by network name (engine-side name).
    pub addresses: HashMap<String, String>,
    /// All labels.
    #[serde(skip)]
    pub labels: HashMap<String, String>,
}

/// An image as the engine has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// Its id (`sha256:...`).
    pub id: String,
    /// Its size, bytes.
    pub size: u64,
}

/// A container's resource use at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time used so far.
    pub cpu: Duration,
    /// Memory in use less the page cache the kernel can take back (cAdvisor's
    /// working set).
    pub memory_working_set: Option<u64>,
}

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildSpec {
    /// Tag for the result.
    pub image: String,
    /// Context directory.
    pub context: std::path::PathBuf,
    /// Dockerfile path, relative to the context.
    pub dockerfile: String,
    /// Build arguments.
    pub args: HashMap<String, String>,
    /// Stage to stop at.
    pub target: Option<String>,
    /// Labels for the image.
    pub labels: HashMap<String, String>,
}

/// A network to create.
#[derive(Clone, Debug)]
pub struct NetworkSpec {
    /// Engine-side name.
    pub name: String,
    /// Driver (`bridge` when `None`).
    pub driver: Option<String>,
    /// No outside access.
    pub internal: bool,
    /// Labels (project labels included).
    pub labels: HashMap<String, String>,
}

/// A volume to create.
#[derive(Clone, Debug)]
pub struct VolumeSpec {
    /// Engine-side name.
    pub name: String,
    /// Driver (`local` when `None`).
    pub driver: Option<String>,
    /// Driver options.
    pub driver_opts: HashMap<String, String>,
    /// Labels (project labels included).
    pub labels: HashMap<String, String>,
}

/// One line of a container's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When the engine recorded it (RFC 3339), if asked for.
    pub timestamp: Option<String>,
    /// True for stderr.
    pub stderr: bool,
    /// The text, without its trailing newline.
    pub text: String,
}

/// What to read of a container's log.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// Keep streaming new output.
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<u64>,
    /// Only lines after this Unix time.
    pub since: Option<i64>,
    /// Include timestamps.
    pub timestamps: bool,
}

/// A container event that should wake the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Container id.
    pub id: String,
    /// The engine's action (`die`, `start`, `health_status: unhealthy`, ...).
    pub action: String,
}

/// The operations shoal needs from a container engine.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Checks that the engine answers.
    async fn ping(&self) -> Result<()>;
    /// True when the engine has `image`.
    async fn has_image(&self, image: &str) -> Result<bool>;
    /// Pulls an image from its registry.
    async fn pull(&self, image: &str) -> Result<()>;
    /// Builds an image; every line of build output is passed to `progress`.
    async fn build(
        &self,
        spec: &BuildSpec,
        progress: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<()>;
    /// The id of `image` as the engine has it now (it changes when the image is
    /// rebuilt under the same name); `None` when the engine does not have it.
    async fn image_id(&self, image: &str) -> Result<Option<String>>;
    /// What the engine has of `image`; `None` when it does not have it.
    async fn image_info(&self, image: &str) -> Result<Option<ImageInfo>>;
    /// Removes an image.
    async fn remove_image(&self, image: &str) -> Result<()>;
    /// Creates the network unless it exists.
    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<()>;
    /// Removes a network; absent is fine.
    async fn remove_network(&self, name: &str) -> Result<()>;
    /// True when a network of that name exists.
    async fn has_network(&self, name: &str) -> Result<bool>;
    /// Names of the networks carrying the project's label.
    async fn project_networks(&self, project: &str) -> Result<Vec<String>>;
    /// Creates the volume unless it exists.
    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<()>;
    /// Removes a volume; absent is fine.
    async fn remove_volume(&self, name: &str) -> Result<()>;
    /// True when a volume of that name exists.
    async fn has_volume(&self, name: &str) -> Result<bool>;
    /// Names of the volumes carrying the project's label.
    async fn project_volumes(&self, project: &str) -> Result<Vec<String>>;
    /// Creates a container (not started); returns its id.
    async fn create(&self, spec: &ContainerSpec) -> Result<String>;
    /// Starts a container.
    async fn start(&self, id: &str) -> Result<()>;
    /// Sends the container its stop signal, then SIGKILL after `grace`.
    async fn stop(&self, id: &str, grace: Duration) -> Result<()>;
    /// Sends a signal.
    async fn kill(&self, id: &str, signal: &str) -> Result<()>;
    /// Freezes a running container's processes.
    async fn pause(&self, id: &str) -> Result<()>;
    /// Thaws a paused container.
    async fn unpause(&self, id: &str) -> Result<()>;
    /// Gives a container another name (running or not).
    async fn rename(&self, id: &str, name: &str) -> Result<()>;
    /// Removes a stopped container (and its anonymous volumes).
    async fn remove(&self, id: &str) -> Result<()>;
    /// Every container of the project, running or not.
    async fn list(&self, project: &str) -> Result<Vec<ContainerInfo>>;
    /// The projects that have containers on the engine, by name.
    async fn projects(&self) -> Result<Vec<String>>;
    /// One container.
    async fn inspect(&self, id: &str) -> Result<ContainerInfo>;
    /// CPU time a container has used so far (cumulative): two readings a known time
    /// apart give its CPU use.
    async fn cpu_time(&self, id: &str) -> Result<Duration> {
        self.usage(id).await.map(|u| u.cpu)
    }
    /// What a container uses now, from one reading of the engine's stats.
    async fn usage(&self, id: &str) -> Result<Usage>;
    /// The processes running in a container, as `ps -ef` shows them: the column
    /// titles and a row per process.
    async fn top(&self, id: &str) -> Result<(Vec<String>, Vec<Vec<String>>)>;
    /// A container's output.
    fn logs(&self, id: &str, opts: &LogOptions) -> BoxStream<'static, Result<LogLine>>;
    /// A container's output in batches of lines, as they arrive (what one read
    /// brought): the collector's way, cheaper per line under a busy stream.
    fn log_batches(&self, id: &str, opts: &LogOptions) -> BoxStream<'static, Result<Vec<LogLine>>> {
        use futures_util::StreamExt;
        self.logs(id, opts).map(|l| l.map(|l| vec![l])).boxed()
    }
    /// Container events of the project, from now on.
    fn events(&self, project: &str) -> BoxStream<'static, Result<Event>>;
    /// Starts a process in a running container (`shoal exec`), attached.
    async fn exec(&self, id: &str, spec: &ExecSpec) -> Result<Attached>;
    /// Sets the terminal size of an exec with a TTY.
    async fn exec_resize(&self, exec: &str, cols: u16, rows: u16) -> Result<()>;
    /// An exec's exit code, once it has ended.
    async fn exec_code(&self, exec: &str) -> Result<Option<i64>>;
    /// Attaches to a container's stdio, before it starts so nothing is missed
    /// (`shoal run`).
    async fn attach(&self, id: &str) -> Result<Attached>;
    /// Sets the terminal size of a container with a TTY.
    async fn resize(&self, id: &str, cols: u16, rows: u16) -> Result<()>;
    /// Waits until a container exits; its exit code.
    async fn wait(&self, id: &str) -> Result<i64>;
}

/// A process to run in a container.
#[derive(Clone, Debug, Default)]
pub struct ExecSpec {
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// `KEY=value` pairs added to the container's environment.
    pub env: Vec<String>,
    /// The user (`name`, `uid`, `uid:gid`).
    pub user: Option<String>,
    /// The working directory.
    pub working_dir: Option<String>,
    /// Give it a terminal.
    pub tty: bool,
    /// Attach its stdin.
    pub stdin: bool,
}

/// An attached process (an exec, or a container's main one): what it writes, and
/// its stdin.
pub struct Attached {
    /// The engine's id of the exec (or container).
    pub id: String,
    /// Its output in order: (true for stderr, bytes); with a TTY all is stdout.
    pub output: BoxStream<'static, Result<(bool, bytes::Bytes)>>,
    /// Its stdin (closing it is end of input).
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

/// Labels every resource of `project` carries.
pub fn project_labels(project: &str) -> HashMap<String, String> {
    HashMap::from([(LABEL_PROJECT.to_string(), project.to_string())])
}

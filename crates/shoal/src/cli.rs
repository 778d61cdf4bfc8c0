//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Runs a compose.yaml on the Docker Engine as a load-balanced, self-healing system.
#[derive(Parser, Debug)]
#[command(name = "shoal", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, as `docker compose` has them.
#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// Compose file(s), merged in order.
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    /// Project name.
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
    /// Project directory (default: the first file's directory).
    #[arg(long)]
    pub project_directory: Option<PathBuf>,
    /// Environment file(s) read instead of .env.
    #[arg(long = "env-file")]
    pub env_files: Vec<PathBuf>,
    /// Profiles to enable.
    #[arg(long = "profile")]
    pub profiles: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build images, start the services and run the control plane.
    Up(UpArgs),
    /// Stop the control plane; remove containers and networks (volumes with -v).
    Down(DownArgs),
    /// List the replicas.
    Ps(PsArgs),
    /// Show the services' output.
    Logs(LogsArgs),
    /// Set replica counts: `shoal scale web=5 api=2`.
    Scale(ScaleArgs),
    /// Build the services' images.
    Build(BuildArgs),
    /// Validate and print the normalized project.
    Config(ConfigArgs),
    /// A service's revisions and rolling update: status, history, undo, pause, resume.
    Rollout(RolloutArgs),
    /// What happened: replicas' phases, restarts, scaling, rollouts.
    Events(EventsArgs),
    /// shoal's version.
    Version(PsArgs),
    /// The processes running in each replica.
    Top(TopArgs),
    /// The host address a service's container port is published on.
    Port(PortArgs),
    /// A live view of the services, their replicas, load and events (q quits).
    Dashboard,
    /// Stop services' replicas (drained first) and keep them stopped.
    Stop(ServicesArgs),
    /// Start stopped services again.
    Start(ServicesArgs),
    /// Restart services, a batch of replicas at a time (rolling).
    Restart(ServicesArgs),
    /// Send a signal to services' replicas.
    Kill(KillArgs),
    /// Freeze services' replicas (drained from the balancer first).
    Pause(ServicesArgs),
    /// Thaw paused replicas.
    Unpause(ServicesArgs),
    /// The projects on this engine, with their state.
    Ls(LsArgs),
    /// The images the project's replicas run.
    Images(ImagesArgs),
    /// Run a command in a running replica.
    Exec(ExecArgs),
    /// Run a one-off container of a service (never balanced).
    Run(RunArgs),
    /// Wait until services' replicas exit; their exit codes.
    Wait(ServicesArgs),
    /// The project for another orchestrator: `shoal export kubernetes`.
    #[command(subcommand)]
    Export(ExportTarget),
}

#[derive(Subcommand, Debug)]
pub enum ExportTarget {
    /// Kubernetes manifests (API 1.33): workloads with probes, rolling updates and
    /// autoscalers, Services, ConfigMaps, Secrets, claims.
    Kubernetes(KubernetesArgs),
}

#[derive(Args, Debug)]
pub struct KubernetesArgs {
    /// Export only these services (default: all).
    pub services: Vec<String>,
    /// Write one file per object into this directory.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "DIR",
        conflicts_with = "stdout"
    )]
    pub output: Option<std::path::PathBuf>,
    /// Print every object to standard output, `---` between them (the default).
    #[arg(long)]
    pub stdout: bool,
    /// The namespace of every object.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// How Services of published ports are exposed.
    #[arg(long, value_enum, default_value_t)]
    pub service_type: ServiceType,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceType {
    /// `type: LoadBalancer`.
    #[default]
    LoadBalancer,
    /// `type: NodePort`.
    NodePort,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Environment variables, KEY=value.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Another entrypoint (a command line, split as a shell would).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Do not require the service's dependencies to be running.
    #[arg(long)]
    pub no_deps: bool,
    /// No terminal, even when stdin is one.
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// The service.
    pub service: String,
    /// The command and its arguments (default: the service's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The replica's number (default: the lowest-numbered running one).
    #[arg(long)]
    pub index: Option<u32>,
    /// No terminal, even when stdin is one.
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Environment variables, KEY=value.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// The working directory.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// The user (name, uid or uid:gid).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// The service.
    pub service: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Also projects with no replica running.
    #[arg(short, long)]
    pub all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Services (default: all).
    pub services: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct ServicesArgs {
    /// Services (default: all).
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Services (default: all).
    pub services: Vec<String>,
    /// The signal, by name (SIGKILL, KILL, HUP) or number.
    #[arg(short, long, default_value = "SIGKILL")]
    pub signal: String,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Services (default: all).
    pub services: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    /// The service.
    pub service: String,
    /// The port in the container.
    pub private_port: u16,
    /// `tcp` or `udp`.
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// A replica number (every replica is behind the same host port).
    #[arg(long)]
    pub index: Option<u32>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Services (default: all).
    pub services: Vec<String>,
    /// Keep following new events.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only events newer than this: a duration (10m) or a Unix time.
    #[arg(long)]
    pub since: Option<String>,
    /// One JSON object a line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub verb: RolloutVerb,
}

#[derive(Subcommand, Debug)]
pub enum RolloutVerb {
    /// Where each service's last rollout is; exits 1 when one failed.
    Status {
        /// Only this service.
        service: Option<String>,
        /// Wait until the rollouts end.
        #[arg(short, long)]
        wait: bool,
        /// With --wait: how long, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// A service's kept revisions (`*` is the current one).
    History {
        /// The service.
        service: String,
    },
    /// Roll a service back to its previous revision, or to --to-revision.
    Undo {
        /// The service.
        service: String,
        /// The revision to go to.
        #[arg(long)]
        to_revision: Option<u32>,
    },
    /// Start no new batch of a service's rollout.
    Pause {
        /// The service.
        service: String,
    },
    /// Go on with a paused rollout.
    Resume {
        /// The service.
        service: String,
    },
}

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// Run the control plane in the background.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Build images even when they exist.
    #[arg(long)]
    pub build: bool,
    /// Replica counts: --scale web=3.
    #[arg(long = "scale", value_name = "SERVICE=N")]
    pub scale: Vec<String>,
    /// With -d: return at once instead of waiting for the services to run.
    #[arg(long)]
    pub no_wait: bool,
    /// With -d: how long to wait for the services, in seconds.
    #[arg(long, default_value_t = 300)]
    pub wait_timeout: u64,
    /// Where to serve Prometheus metrics: IP:PORT, or `off` (default: the file's
    /// `x-shoal.metrics`, else 127.0.0.1 on a port chosen from the project's name).
    #[arg(long, value_name = "ADDR|off")]
    pub metrics: Option<String>,
    /// Internal: this process is the detached control plane.
    #[arg(long, hide = true)]
    pub detached_child: bool,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    /// Remove named volumes too.
    #[arg(short = 'v', long)]
    pub volumes: bool,
}

#[derive(Copy, Clone, Debug, ValueEnum, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Services (default: all).
    pub services: Vec<String>,
    /// Keep following new output (across restarts, recreations and new replicas).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Lines from the end of each replica's log.
    #[arg(short = 'n', long)]
    pub tail: Option<usize>,
    /// Only output from this time on: RFC 3339, a duration back from now (10m) or a
    /// Unix time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only output up to this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Only lines matching this regular expression.
    #[arg(long, value_name = "RE")]
    pub grep: Option<String>,
    /// --grep ignores case.
    #[arg(short = 'i', long)]
    pub ignore_case: bool,
    /// Only this stream.
    #[arg(long, value_enum)]
    pub stream: Option<LogStream>,
    /// Only this replica number.
    #[arg(long, value_name = "N")]
    pub index: Option<u32>,
    /// Also shoal's events about the replicas (started, restarted, ...).
    #[arg(long)]
    pub events: bool,
    /// One JSON object a line: time, service, replica, container, stream, line.
    #[arg(long)]
    pub json: bool,
    /// Show timestamps.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Leave out the `web-1 |` prefix.
    #[arg(long)]
    pub no_log_prefix: bool,
}

/// `--stream`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// SERVICE=N pairs.
    #[arg(required = true, value_name = "SERVICE=N")]
    pub counts: Vec<String>,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Services to build (default: all with `build`).
    pub services: Vec<String>,
}

#[derive(Copy, Clone, Debug, ValueEnum, Default, PartialEq, Eq)]
pub enum ConfigFormat {
    #[default]
    Yaml,
    Json,
}

#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: ConfigFormat,
    /// Only validate; print nothing.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the service names, one a line.
    #[arg(long)]
    pub services: bool,
}

/// Parses `SERVICE=N`.
pub fn parse_count(s: &str) -> anyhow::Result<(String, u32)> {
    let (svc, n) = s
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("`{s}`: expected SERVICE=N"))?;
    let n = n
        .parse()
        .map_err(|_| anyhow::anyhow!("`{s}`: {n} is not a replica count"))?;
    Ok((svc.to_string(), n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn compose_style_flags_parse() {
        let cli = Cli::parse_from([
            "shoal", "-f", "a.yaml", "-p", "x", "logs", "-f", "--tail", "5", "web",
        ]);
        assert_eq!(cli.global.files, [PathBuf::from("a.yaml")]);
        let Command::Logs(logs) = cli.command else {
            panic!("logs")
        };
        assert!(logs.follow);
        assert_eq!(logs.tail, Some(5));
        assert_eq!(parse_count("web=3").unwrap(), ("web".into(), 3));
        assert!(parse_count("web").is_err());
    }
}

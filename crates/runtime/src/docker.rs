//! [`Runtime`] on the Docker Engine API, through bollard.

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HealthConfig,
    HealthStatusEnum, HostConfig, HostConfigLogConfig, Mount, MountTmpfsOptions, MountType,
    NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig, RestartPolicy,
    RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, CreateImageOptions, EventsOptions,
    KillContainerOptions, ListContainersOptions, ListNetworksOptions, ListVolumesOptions,
    LogsOptions, RemoveContainerOptions, RemoveImageOptions, RenameContainerOptions, StatsOptions,
    StopContainerOptions, TopOptions,
};
use futures_util::stream::{BoxStream, StreamExt};
use shoal_spec::MountKind;

use crate::container::ContainerSpec;
use crate::{
    Attached, BuildSpec, ContainerInfo, Error, Event, ExecSpec, Health, ImageInfo, LogLine,
    LogOptions, NetworkSpec, Result, Runtime, State, Usage, VolumeSpec, LABEL_CONFIG_HASH,
    LABEL_PROJECT, LABEL_REPLICA, LABEL_SERVICE,
};

/// The Docker Engine.
#[derive(Clone)]
pub struct Docker {
    client: bollard::Docker,
    endpoint: String,
}

impl Docker {
    /// An attached process' output as (stderr?, bytes).
    fn output_of(
        &self,
        output: std::pin::Pin<
            Box<
                dyn futures_util::Stream<
                        Item = std::result::Result<bollard::container::LogOutput, BollardError>,
                    > + Send,
            >,
        >,
    ) -> BoxStream<'static, Result<(bool, bytes::Bytes)>> {
        use bollard::container::LogOutput;
        let endpoint = self.endpoint.clone();
        output
            .map(move |item| match item {
                Ok(LogOutput::StdErr { message }) => Ok((true, message)),
                Ok(
                    LogOutput::StdOut { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdIn { message },
                ) => Ok((false, message)),
                Err(e) => Err(Error::Engine {
                    action: format!("read output ({endpoint})"),
                    message: e.to_string(),
                }),
            })
            .boxed()
    }

    /// Connects as the docker CLI would (`DOCKER_HOST`, else the local socket) and
    /// negotiates the API version with the engine.
    pub async fn connect() -> Result<Docker> {
        let endpoint = match std::env::var("DOCKER_HOST") {
            Ok(h) if !h.is_empty() => format!("{h} (DOCKER_HOST)"),
            _ => "unix:///var/run/docker.sock (DOCKER_HOST is not set)".to_string(),
        };
        let unreachable = |e: BollardError| Error::Unreachable {
            endpoint: endpoint.clone(),
            reason: e.to_string(),
        };
        let client = bollard::Docker::connect_with_defaults().map_err(unreachable)?;
        let client = client.negotiate_version().await.map_err(unreachable)?;
        Ok(Docker { client, endpoint })
    }

    fn engine(&self, action: impl Into<String>) -> impl FnOnce(BollardError) -> Error + '_ {
        let action = action.into();
        move |e| match e {
            BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            } => Error::NotFound(message),
            BollardError::DockerResponseServerError { message, .. } => {
                Error::Engine { action, message }
            }
            other if is_connection_error(&other) => Error::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: other.to_string(),
            },
            other => Error::Engine {
                action,
                message: other.to_string(),
            },
        }
    }
}

impl Docker {
    /// The engine's answer, with "not found" as `None`: absent is what an inspect
    /// checks for and what a removal wants anyway.
    fn found<T>(&self, action: impl Into<String>, r: Result<T, BollardError>) -> Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => match self.engine(action)(e) {
                Error::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }
}

fn is_connection_error(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
            | BollardError::SocketNotFoundError(_)
    )
}

fn label_filter(project: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_PROJECT}={project}")],
    )])
}

fn nanos(d: Option<Duration>) -> Option<i64> {
    d.map(|d| d.as_nanos() as i64)
}

#[async_trait::async_trait]
impl Runtime for Docker {
    async fn ping(&self) -> Result<()> {
        self.client
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| Error::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: e.to_string(),
            })
    }

    async fn has_image(&self, image: &str) -> Result<bool> {
        Ok(self
            .found("inspect image", self.client.inspect_image(image).await)?
            .is_some())
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>> {
        Ok(self
            .found("inspect image", self.client.inspect_image(image).await)?
            .and_then(|i| i.id))
    }

    async fn image_info(&self, image: &str) -> Result<Option<ImageInfo>> {
        Ok(self
            .found("inspect image", self.client.inspect_image(image).await)?
            .map(|i| ImageInfo {
                id: i.id.unwrap_or_default(),
                size: i.size.unwrap_or(0).max(0) as u64,
            }))
    }

    async fn pull(&self, image: &str) -> Result<()> {
        let opts = CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        };
        let mut stream = self.client.create_image(Some(opts), None, None);
        while let Some(item) = stream.next().await {
            item.map_err(self.engine(format!("pull {image}")))?;
        }
        Ok(())
    }

    async fn build(
        &self,
        spec: &BuildSpec,
        progress: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<()> {
        let dir = spec.context.clone();
        let dockerfile = spec.dockerfile.clone();
        let tar = tokio::task::spawn_blocking(move || crate::context::tarball(&dir, &dockerfile))
            .await
            .expect("the tar task does not panic")?;
        let options = BuildImageOptions {
            dockerfile: spec.dockerfile.clone(),
            t: Some(spec.image.clone()),
            buildargs: Some(spec.args.clone()),
            target: spec.target.clone().unwrap_or_default(),
            labels: Some(spec.labels.clone()),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        let mut stream =
            self.client
                .build_image(options, None, Some(bollard::body_full(tar.into())));
        let mut output = String::new();
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| match e {
                BollardError::DockerStreamError { error } => Error::Build {
                    image: spec.image.clone(),
                    message: error,
                    output: output.clone(),
                },
                other => self.engine(format!("build {}", spec.image))(other),
            })?;
            if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
                output.push_str(text);
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    progress(line);
                }
            }
            if let Some(detail) = info.error_detail {
                return Err(Error::Build {
                    image: spec.image.clone(),
                    message: detail.message.unwrap_or_default(),
                    output,
                });
            }
        }
        Ok(())
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        let r = self
            .client
            .remove_image(image, None::<RemoveImageOptions>, None)
            .await;
        self.found(format!("remove image {image}"), r)?;
        Ok(())
    }

    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<()> {
        if self.has_network(&spec.name).await? {
            return Ok(());
        }
        let req = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: spec.driver.clone(),
            internal: Some(spec.internal),
            labels: Some(spec.labels.clone()),
            ..Default::default()
        };
        match self.client.create_network(req).await {
            Ok(_) => Ok(()),
            // Lost a race with another creator: fine.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(self.engine(format!("create network {}", spec.name))(e)),
        }
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        let r = self.client.remove_network(name).await;
        self.found(format!("remove network {name}"), r)?;
        Ok(())
    }

    async fn has_network(&self, name: &str) -> Result<bool> {
        Ok(self
            .found(
                "inspect network",
                self.client.inspect_network(name, None).await,
            )?
            .is_some_and(|n| n.name.as_deref() == Some(name)))
    }

    async fn project_networks(&self, project: &str) -> Result<Vec<String>> {
        let opts = ListNetworksOptions {
            filters: Some(label_filter(project)),
        };
        let nets = self
            .client
            .list_networks(Some(opts))
            .await
            .map_err(self.engine("list networks"))?;
        Ok(nets.into_iter().filter_map(|n| n.name).collect())
    }

    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<()> {
        if self.has_volume(&spec.name).await? {
            return Ok(());
        }
        let req = VolumeCreateRequest {
            name: Some(spec.name.clone()),
            driver: spec.driver.clone(),
            driver_opts: Some(spec.driver_opts.clone()),
            labels: Some(spec.labels.clone()),
            ..Default::default()
        };
        self.client
            .create_volume(req)
            .await
            .map(|_| ())
            .map_err(self.engine(format!("create volume {}", spec.name)))
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let r = self
            .client
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await;
        self.found(format!("remove volume {name}"), r)?;
        Ok(())
    }

    async fn has_volume(&self, name: &str) -> Result<bool> {
        Ok(self
            .found("inspect volume", self.client.inspect_volume(name).await)?
            .is_some())
    }

    async fn project_volumes(&self, project: &str) -> Result<Vec<String>> {
        let opts = ListVolumesOptions {
            filters: Some(label_filter(project)),
        };
        let vols = self
            .client
            .list_volumes(Some(opts))
            .await
            .map_err(self.engine("list volumes"))?;
        Ok(vols
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let body = create_body(spec);
        let opts = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let created = self
            .client
            .create_container(Some(opts), body)
            .await
            .map_err(self.engine(format!("create container {}", spec.name)))?;
        // The engine joins one network at creation (API 1.41); the rest here.
        if spec.network_mode.is_none() {
            for (net, aliases) in spec.networks.iter().skip(1) {
                let req = NetworkConnectRequest {
                    container: created.id.clone(),
                    endpoint_config: Some(EndpointSettings {
                        aliases: Some(aliases.clone()),
                        ..Default::default()
                    }),
                };
                self.client
                    .connect_network(net, req)
                    .await
                    .map_err(self.engine(format!("connect {} to {net}", spec.name)))?;
            }
        }
        Ok(created.id)
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.client
            .start_container(id, None)
            .await
            .map_err(self.engine(format!("start {id}")))
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let opts = StopContainerOptions {
            t: Some(grace.as_secs().max(1) as i32),
            signal: None,
        };
        match self.client.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.engine(format!("stop {id}"))(e)),
        }
    }

    async fn pause(&self, id: &str) -> Result<()> {
        self.client
            .pause_container(id)
            .await
            .map_err(self.engine(format!("pause {id}")))
    }

    async fn unpause(&self, id: &str) -> Result<()> {
        self.client
            .unpause_container(id)
            .await
            .map_err(self.engine(format!("unpause {id}")))
    }

    async fn kill(&self, id: &str, signal: &str) -> Result<()> {
        let opts = KillContainerOptions {
            signal: signal.to_string(),
        };
        self.client
            .kill_container(id, Some(opts))
            .await
            .map_err(self.engine(format!("kill {id}")))
    }

    async fn rename(&self, id: &str, name: &str) -> Result<()> {
        let opts = RenameContainerOptions {
            name: name.to_string(),
        };
        self.client
            .rename_container(id, opts)
            .await
            .map_err(self.engine(format!("rename {id} to {name}")))
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptions {
            v: true,
            force: false,
            link: false,
        };
        let r = self.client.remove_container(id, Some(opts)).await;
        self.found(format!("remove {id}"), r)?;
        Ok(())
    }

    async fn list(&self, project: &str) -> Result<Vec<ContainerInfo>> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(label_filter(project)),
            ..Default::default()
        };
        let summaries = self
            .client
            .list_containers(Some(opts))
            .await
            .map_err(self.engine("list containers"))?;
        // Inspected together: a pass over a dozen replicas waits for one round trip,
        // not a dozen.
        let ids: Vec<String> = summaries.into_iter().filter_map(|s| s.id).collect();
        let inspects: Vec<_> = ids.iter().map(|id| self.inspect(id)).collect();
        let inspected: Vec<Result<ContainerInfo>> = futures_util::stream::iter(inspects)
            .buffer_unordered(8)
            .collect()
            .await;
        let mut out = Vec::with_capacity(inspected.len());
        for r in inspected {
            match r {
                Ok(info) => out.push(info),
                // Removed between the list and the inspect.
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| (&a.service, a.replica).cmp(&(&b.service, b.replica)));
        Ok(out)
    }

    async fn projects(&self) -> Result<Vec<String>> {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![LABEL_PROJECT.to_string()],
            )])),
            ..Default::default()
        };
        let summaries = self
            .client
            .list_containers(Some(opts))
            .await
            .map_err(self.engine("list containers"))?;
        let mut names: Vec<String> = summaries
            .into_iter()
            .filter_map(|s| s.labels?.remove(LABEL_PROJECT))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let c = self
            .client
            .inspect_container(id, None)
            .await
            .map_err(self.engine(format!("inspect {id}")))?;
        Ok(info_from(c))
    }

    async fn usage(&self, id: &str) -> Result<Usage> {
        // One-shot: the current counters at once, without the engine's second sample.
        let opts = StatsOptions {
            stream: false,
            one_shot: true,
        };
        let mut stream = self.client.stats(id, Some(opts));
        let Some(stats) = stream.next().await else {
            return Err(Error::NotFound(format!("stats of {id}")));
        };
        let stats = stats.map_err(self.engine(format!("stats {id}")))?;
        let ns = stats
            .cpu_stats
            .and_then(|c| c.cpu_usage)
            .and_then(|u| u.total_usage)
            .unwrap_or(0);
        let memory = stats.memory_stats;
        let working_set = memory.as_ref().and_then(|m| {
            // cgroup v2 names it inactive_file, v1 total_inactive_file.
            let inactive = m.stats.as_ref().and_then(|s| {
                s.get("inactive_file")
                    .or_else(|| s.get("total_inactive_file"))
                    .copied()
            });
            m.usage.map(|u| u.saturating_sub(inactive.unwrap_or(0)))
        });
        Ok(Usage {
            cpu: Duration::from_nanos(ns),
            memory_working_set: working_set,
        })
    }

    async fn top(&self, id: &str) -> Result<(Vec<String>, Vec<Vec<String>>)> {
        let top = self
            .client
            .top_processes(id, Some(TopOptions::default()))
            .await
            .map_err(self.engine(format!("top {id}")))?;
        Ok((
            top.titles.unwrap_or_default(),
            top.processes.unwrap_or_default(),
        ))
    }

    fn logs(&self, id: &str, opts: &LogOptions) -> BoxStream<'static, Result<LogLine>> {
        let options = LogsOptions {
            follow: opts.follow,
            stdout: true,
            stderr: true,
            since: opts.since.unwrap_or(0) as i32,
            until: 0,
            timestamps: opts.timestamps,
            tail: opts
                .tail
                .map(|n| n.to_string())
                .unwrap_or_else(|| "all".into()),
        };
        let client = self.client.clone();
        let endpoint = self.endpoint.clone();
        let timestamps = opts.timestamps;
        let stream = client.logs(id, Some(options));
        // Frames are not lines: keep what follows the last newline for the next frame.
        let mut pending: [Vec<u8>; 2] = Default::default();
        stream
            .map(move |item| match item {
                Ok(out) => {
                    let (stderr, bytes) = match out {
                        bollard::container::LogOutput::StdErr { message } => (true, message),
                        bollard::container::LogOutput::StdOut { message }
                        | bollard::container::LogOutput::Console { message }
                        | bollard::container::LogOutput::StdIn { message } => (false, message),
                    };
                    let buf = &mut pending[usize::from(stderr)];
                    buf.extend_from_slice(&bytes);
                    let mut lines = Vec::new();
                    let mut start = 0;
                    while let Some(i) = buf[start..].iter().position(|b| *b == b'\n') {
                        let mut end = start + i;
                        if end > start && buf[end - 1] == b'\r' {
                            end -= 1;
                        }
                        lines.push(Ok(log_line(&buf[start..end], stderr, timestamps)));
                        start += i + 1;
                    }
                    buf.drain(..start);
                    futures_util::stream::iter(lines)
                }
                Err(e) => futures_util::stream::iter(vec![Err(Error::Unreachable {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                })]),
            })
            .flatten()
            .boxed()
    }

    fn log_batches(&self, id: &str, opts: &LogOptions) -> BoxStream<'static, Result<Vec<LogLine>>> {
        // Straight off the socket when the engine is on one (see `logstream`).
        let socket = match std::env::var("DOCKER_HOST") {
            Ok(h) if !h.is_empty() => h.strip_prefix("unix://").map(std::path::PathBuf::from),
            _ => Some(std::path::PathBuf::from("/var/run/docker.sock")),
        };
        match socket {
            Some(socket) => {
                let v = self.client.client_version();
                let version = format!("{}.{}", v.major_version, v.minor_version);
                crate::logstream::batches(socket, version, id, opts)
            }
            None => self.logs(id, opts).map(|l| l.map(|l| vec![l])).boxed(),
        }
    }

    fn events(&self, project: &str) -> BoxStream<'static, Result<Event>> {
        let mut filters = label_filter(project);
        filters.insert("type".into(), vec!["container".into()]);
        // Lifecycle changes only: every healthcheck run is an exec with events of its
        // own, which would wake the control plane for nothing.
        filters.insert(
            "event".into(),
            [
                "create",
                "start",
                "die",
                "stop",
                "kill",
                "oom",
                "destroy",
                "pause",
                "unpause",
                "health_status",
            ]
            .map(String::from)
            .to_vec(),
        );
        let opts = EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let endpoint = self.endpoint.clone();
        self.client
            .events(Some(opts))
            .map(move |item| match item {
                Ok(ev) => Ok(Event {
                    id: ev.actor.and_then(|a| a.id).unwrap_or_default(),
                    action: ev.action.unwrap_or_default(),
                }),
                Err(e) => Err(Error::Unreachable {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                }),
            })
            .boxed()
    }

    async fn exec(&self, id: &str, spec: &ExecSpec) -> Result<Attached> {
        use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
        let created = self
            .client
            .create_exec(
                id,
                CreateExecOptions {
                    attach_stdin: Some(spec.stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(spec.tty),
                    env: Some(spec.env.clone()),
                    cmd: Some(spec.cmd.clone()),
                    user: spec.user.clone(),
                    working_dir: spec.working_dir.clone(),
                    ..Default::default()
                },
            )
            .await
            .map_err(self.engine(format!("exec in {id}")))?;
        let started = self
            .client
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: spec.tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(self.engine(format!("exec in {id}")))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(Error::Engine {
                action: format!("exec in {id}"),
                message: "the engine did not attach".into(),
            });
        };
        Ok(Attached {
            id: created.id,
            output: self.output_of(output),
            input,
        })
    }

    async fn exec_resize(&self, exec: &str, cols: u16, rows: u16) -> Result<()> {
        let opts = bollard::query_parameters::ResizeExecOptions {
            h: i32::from(rows),
            w: i32::from(cols),
        };
        self.client
            .resize_exec(exec, opts)
            .await
            .map_err(self.engine(format!("resize exec {exec}")))
    }

    async fn attach(&self, id: &str) -> Result<Attached> {
        let opts = bollard::query_parameters::AttachContainerOptions {
            stream: true,
            stdin: true,
            stdout: true,
            stderr: true,
            logs: false,
            detach_keys: None,
        };
        let attached = self
            .client
            .attach_container(id, Some(opts))
            .await
            .map_err(self.engine(format!("attach {id}")))?;
        Ok(Attached {
            id: id.to_string(),
            output: self.output_of(attached.output),
            input: attached.input,
        })
    }

    async fn resize(&self, id: &str, cols: u16, rows: u16) -> Result<()> {
        let opts = bollard::query_parameters::ResizeContainerTTYOptions {
            h: i32::from(rows),
            w: i32::from(cols),
        };
        self.client
            .resize_container_tty(id, opts)
            .await
            .map_err(self.engine(format!("resize {id}")))
    }

    async fn wait(&self, id: &str) -> Result<i64> {
        let mut stream = self.client.wait_container(id, None);
        match stream.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // A non-zero exit is reported as an error carrying the code.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(self.engine(format!("wait {id}"))(e)),
            None => Err(Error::NotFound(format!("wait {id}"))),
        }
    }

    async fn exec_code(&self, exec: &str) -> Result<Option<i64>> {
        let r = self
            .client
            .inspect_exec(exec)
            .await
            .map_err(self.engine(format!("inspect exec {exec}")))?;
        Ok(r.exit_code)
    }
}

/// A line of a log stream, its timestamp split off when the engine was asked for one.
pub(crate) fn log_line(line: &[u8], stderr: bool, timestamps: bool) -> LogLine {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if timestamps {
        if let Some(i) = line.iter().position(|b| *b == b' ') {
            return LogLine {
                timestamp: Some(text(&line[..i])),
                stderr,
                text: text(&line[i + 1..]),
            };
        }
    }
    LogLine {
        timestamp: None,
        stderr,
        text: text(line),
    }
}

fn create_body(spec: &ContainerSpec) -> ContainerCreateBody {
    let healthcheck = spec.healthcheck.as_ref().map(|h| HealthConfig {
        test: Some(h.test.clone()).filter(|t| !t.is_empty()),
        interval: nanos(h.interval),
        timeout: nanos(h.timeout),
        retries: h.retries.map(i64::from),
        start_period: nanos(h.start_period),
        start_interval: nanos(h.start_interval),
    });
    let mounts = spec
        .mounts
        .iter()
        .map(|m| Mount {
            target: Some(m.target.clone()),
            source: m.source.clone(),
            typ: Some(match m.kind {
                MountKind::Volume => MountType::VOLUME,
                MountKind::Bind => MountType::BIND,
                MountKind::Tmpfs => MountType::TMPFS,
                // The engine says whether it supports these.
                MountKind::Image => MountType::IMAGE,
                MountKind::Cluster => MountType::CLUSTER,
                MountKind::Npipe => MountType::NPIPE,
            }),
            read_only: Some(m.read_only),
            tmpfs_options: (m.kind == MountKind::Tmpfs).then(MountTmpfsOptions::default),
            ..Default::default()
        })
        .collect();
    let e = &spec.engine;
    let strings = |key: &str| -> Option<Vec<String>> {
        match e.get(key)? {
            serde_json::Value::Array(items) => Some(
                items
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect(),
            ),
            serde_json::Value::String(s) => Some(vec![s.clone()]),
            _ => None,
        }
    };
    let flag = |key: &str| e.get(key).and_then(serde_json::Value::as_bool);
    let dict = |key: &str| -> Option<HashMap<String, String>> {
        match e.get(key)? {
            serde_json::Value::Object(m) => Some(
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(String::from)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect(),
            ),
            serde_json::Value::Array(items) => Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str())
                    .filter_map(|s| s.split_once(['=', ':']))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            _ => None,
        }
    };
    let extra_hosts =
        dict("extra_hosts").map(|m| m.into_iter().map(|(h, ip)| format!("{h}:{ip}")).collect());
    let tmpfs =
        strings("tmpfs").map(|paths| paths.into_iter().map(|p| (p, String::new())).collect());
    let shm_size = e.get("shm_size").and_then(|v| match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => shoal_spec::syntax::bytes(s).ok().map(|b| b as i64),
        _ => None,
    });
    // `logging`: the engine's driver and its options (`max-size`, `max-file`, ...).
    let log_config = e.get("logging").map(|l| HostConfigLogConfig {
        typ: l["driver"].as_str().map(String::from),
        config: l["options"].as_object().map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let v = v
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string());
                    (k.clone(), v)
                })
                .collect()
        }),
    });
    let host_config = HostConfig {
        log_config,
        mounts: Some(mounts),
        nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64),
        memory: spec.memory.map(|m| m as i64),
        pids_limit: spec.pids,
        network_mode: spec
            .network_mode
            .clone()
            .or_else(|| spec.networks.first().map(|(n, _)| n.clone())),
        // shoal restarts replicas itself, with backoff; the engine must not race it.
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        cap_add: strings("cap_add"),
        cap_drop: strings("cap_drop"),
        privileged: flag("privileged"),
        init: flag("init"),
        readonly_rootfs: flag("read_only"),
        sysctls: dict("sysctls"),
        dns: strings("dns"),
        extra_hosts,
        tmpfs,
        shm_size,
        security_opt: strings("security_opt"),
        group_add: strings("group_add"),
        ..Default::default()
    };
    let networking_config = match (&spec.network_mode, spec.networks.first()) {
        (None, Some((net, aliases))) => Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                net.clone(),
                EndpointSettings {
                    aliases: Some(aliases.clone()),
                    ..Default::default()
                },
            )])),
        }),
        _ => None,
    };
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        hostname: spec.hostname.clone(),
        user: spec.user.clone(),
        env: Some(spec.env.clone()),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        working_dir: spec.working_dir.clone(),
        labels: Some(spec.labels.clone()),
        exposed_ports: Some(spec.exposed.clone()).filter(|p| !p.is_empty()),
        healthcheck,
        stop_signal: spec.stop_signal.clone(),
        stop_timeout: Some(spec.stop_grace.as_secs() as i64),
        tty: flag("tty"),
        open_stdin: flag("stdin_open"),
        // Set by `shoal run` (not a Compose key): stdin closes when the client's does.
        stdin_once: flag("stdin_once"),
        attach_stdin: flag("stdin_once"),
        attach_stdout: flag("stdin_once"),
        attach_stderr: flag("stdin_once"),
        host_config: Some(host_config),
        networking_config,
        ..Default::default()
    }
}

fn info_from(c: ContainerInspectResponse) -> ContainerInfo {
    use bollard::models::ContainerStateStatusEnum as S;
    let config = c.config.unwrap_or_default();
    let labels = config.labels.unwrap_or_default();
    let state = c.state.unwrap_or_default();
    let status = match state.status {
        Some(S::CREATED) => State::Created,
        Some(S::RUNNING) | Some(S::PAUSED) => State::Running,
        Some(S::RESTARTING) => State::Restarting,
        Some(S::REMOVING) => State::Removing,
        Some(S::DEAD) => State::Dead,
        _ => State::Exited,
    };
    let health = state.health.and_then(|h| match h.status? {
        HealthStatusEnum::STARTING => Some(Health::Starting),
        HealthStatusEnum::HEALTHY => Some(Health::Healthy),
        HealthStatusEnum::UNHEALTHY => Some(Health::Unhealthy),
        _ => None,
    });
    let addresses = c
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(net, ep)| Some((net, ep.ip_address.filter(|ip| !ip.is_empty())?)))
        .collect();
    ContainerInfo {
        image: config.image.unwrap_or_default(),
        paused: state.status == Some(S::PAUSED),
        id: c.id.unwrap_or_default(),
        name: c
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string(),
        service: labels.get(LABEL_SERVICE).cloned().unwrap_or_default(),
        replica: labels
            .get(LABEL_REPLICA)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
        config_hash: labels.get(LABEL_CONFIG_HASH).cloned().unwrap_or_default(),
        state: status,
        health,
        exit_code: (status == State::Exited || status == State::Dead)
            .then_some(state.exit_code)
            .flatten(),
        addresses,
        labels,
    }
}

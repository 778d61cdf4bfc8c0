//! An in-memory [`Runtime`] for tests of the control plane: containers, networks,
//! volumes and images are entries in maps, and tests drive what the engine would do on
//! its own (a container exiting, a health status changing) through its methods.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::{BoxStream, StreamExt};
use tokio::sync::broadcast;

use crate::container::ContainerSpec;
use crate::{
    Attached, BuildSpec, ContainerInfo, Error, Event, ExecSpec, Health, ImageInfo, LogLine,
    LogOptions, NetworkSpec, Result, Runtime, State, Usage, VolumeSpec, LABEL_CONFIG_HASH,
    LABEL_PROJECT, LABEL_REPLICA, LABEL_SERVICE,
};

#[derive(Default)]
struct World {
    next_id: u64,
    containers: HashMap<String, (ContainerSpec, ContainerInfo)>,
    networks: HashMap<String, NetworkSpec>,
    volumes: HashMap<String, VolumeSpec>,
    /// Image ids by name.
    images: HashMap<String, String>,
    /// CPU time used, by container id.
    cpu: HashMap<String, Duration>,
    /// Every call that changed something, in order: `create web-1`, `start <id>`...
    calls: Vec<String>,
}

/// The in-memory runtime.
pub struct Fake {
    world: Mutex<World>,
    events: broadcast::Sender<Event>,
}

impl Default for Fake {
    fn default() -> Fake {
        Fake::new()
    }
}

impl Fake {
    /// An empty engine.
    pub fn new() -> Fake {
        Fake {
            world: Mutex::new(World::default()),
            events: broadcast::channel(1024).0,
        }
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world
            .lock()
            .expect("no test panics while holding the lock")
    }

    /// Makes an image present, as a pull would; again, as a rebuild would (it gets a
    /// new id).
    pub fn add_image(&self, image: &str) {
        let mut w = self.world();
        w.next_id += 1;
        let id = format!("sha256:{:04}", w.next_id);
        w.images.insert(image.to_string(), id);
    }

    /// The mutating calls made so far.
    pub fn calls(&self) -> Vec<String> {
        self.world().calls.clone()
    }

    /// The container as the engine would inspect it, found by name.
    pub fn by_name(&self, name: &str) -> Option<ContainerInfo> {
        self.world()
            .containers
            .values()
            .find(|(_, i)| i.name == name)
            .map(|(_, i)| i.clone())
    }

    /// The process in a container ends with `code`.
    pub fn exit(&self, id: &str, code: i64) {
        if let Some((_, info)) = self.world().containers.get_mut(id) {
            info.state = State::Exited;
            info.exit_code = Some(code);
        }
        self.emit(id, "die");
    }

    /// Pauses or thaws a running container.
    fn set_paused(&self, id: &str, paused: bool) -> Result<()> {
        let mut w = self.world();
        let Some((_, info)) = w.containers.get_mut(id) else {
            return Err(Error::NotFound(format!("container {id}")));
        };
        if info.state != State::Running {
            return Err(Error::Engine {
                action: format!("pause {id}"),
                message: "the container is not running".into(),
            });
        }
        info.paused = paused;
        let name = info.name.clone();
        w.calls.push(format!(
            "{} {name}",
            if paused { "pause" } else { "unpause" }
        ));
        Ok(())
    }

    /// The container has used `used` of CPU time so far.
    pub fn set_cpu_time(&self, id: &str, used: Duration) {
        self.world().cpu.insert(id.to_string(), used);
    }

    /// The engine's healthcheck reports `health`.
    pub fn set_health(&self, id: &str, health: Health) {
        if let Some((_, info)) = self.world().containers.get_mut(id) {
            info.health = Some(health);
        }
        self.emit(id, "health_status");
    }

    fn emit(&self, id: &str, action: &str) {
        let _ = self.events.send(Event {
            id: id.to_string(),
            action: action.to_string(),
        });
    }

    fn get(&self, id: &str) -> Result<(ContainerSpec, ContainerInfo)> {
        let w = self.world();
        w.containers
            .get(id)
            .or_else(|| w.containers.values().find(|(_, i)| i.name == id))
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("container {id}")))
    }
}

#[async_trait::async_trait]
impl Runtime for Fake {
    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    async fn has_image(&self, image: &str) -> Result<bool> {
        Ok(self.world().images.contains_key(image))
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>> {
        Ok(self.world().images.get(image).cloned())
    }

    async fn image_info(&self, image: &str) -> Result<Option<ImageInfo>> {
        Ok(self.world().images.get(image).map(|id| ImageInfo {
            id: id.clone(),
            size: 0,
        }))
    }

    async fn pull(&self, image: &str) -> Result<()> {
        Err(Error::Engine {
            action: format!("pull {image}"),
            message: "the fake runtime reaches no registry".into(),
        })
    }

    async fn build(
        &self,
        spec: &BuildSpec,
        progress: &mut (dyn for<'l> FnMut(&'l str) + Send),
    ) -> Result<()> {
        progress(&format!("Successfully tagged {}", spec.image));
        self.add_image(&spec.image);
        let mut w = self.world();
        w.calls.push(format!("build {}", spec.image));
        Ok(())
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        self.world().images.remove(image);
        Ok(())
    }

    async fn ensure_network(&self, spec: &NetworkSpec) -> Result<()> {
        let mut w = self.world();
        if !w.networks.contains_key(&spec.name) {
            w.calls.push(format!("create network {}", spec.name));
            w.networks.insert(spec.name.clone(), spec.clone());
        }
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> Result<()> {
        let mut w = self.world();
        if w.networks.remove(name).is_some() {
            w.calls.push(format!("remove network {name}"));
        }
        Ok(())
    }

    async fn has_network(&self, name: &str) -> Result<bool> {
        Ok(self.world().networks.contains_key(name))
    }

    async fn project_networks(&self, project: &str) -> Result<Vec<String>> {
        Ok(self
            .world()
            .networks
            .values()
            .filter(|n| n.labels.get(LABEL_PROJECT).map(String::as_str) == Some(project))
            .map(|n| n.name.clone())
            .collect())
    }

    async fn ensure_volume(&self, spec: &VolumeSpec) -> Result<()> {
        let mut w = self.world();
        if !w.volumes.contains_key(&spec.name) {
            w.calls.push(format!("create volume {}", spec.name));
            w.volumes.insert(spec.name.clone(), spec.clone());
        }
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let mut w = self.world();
        if w.volumes.remove(name).is_some() {
            w.calls.push(format!("remove volume {name}"));
        }
        Ok(())
    }

    async fn has_volume(&self, name: &str) -> Result<bool> {
        Ok(self.world().volumes.contains_key(name))
    }

    async fn project_volumes(&self, project: &str) -> Result<Vec<String>> {
        Ok(self
            .world()
            .volumes
            .values()
            .filter(|v| v.labels.get(LABEL_PROJECT).map(String::as_str) == Some(project))
            .map(|v| v.name.clone())
            .collect())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String> {
        let mut w = self.world();
        if !w.images.contains_key(&spec.image) {
            return Err(Error::NotFound(format!("image {}", spec.image)));
        }
        if w.containers.values().any(|(_, i)| i.name == spec.name) {
            return Err(Error::Engine {
                action: format!("create container {}", spec.name),
                message: "name already in use".into(),
            });
        }
        w.next_id += 1;
        let id = format!("c{:04}", w.next_id);
        let label = |k: &str| spec.labels.get(k).cloned().unwrap_or_default();
        let info = ContainerInfo {
            image: spec.image.clone(),
            paused: false,
            id: id.clone(),
            name: spec.name.clone(),
            service: label(LABEL_SERVICE),
            replica: label(LABEL_REPLICA).parse().unwrap_or(0),
            config_hash: label(LABEL_CONFIG_HASH),
            state: State::Created,
            health: None,
            exit_code: None,
            addresses: HashMap::new(),
            labels: spec.labels.clone(),
        };
        w.calls.push(format!("create {}", spec.name));
        w.containers.insert(id.clone(), (spec.clone(), info));
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<()> {
        let (spec, _) = self.get(id)?;
        {
            let mut w = self.world();
            let n = w.next_id;
            let Some((_, info)) = w.containers.get_mut(id) else {
                return Err(Error::NotFound(id.to_string()));
            };
            info.state = State::Running;
            info.exit_code = None;
            info.health = spec
                .healthcheck
                .as_ref()
                .filter(|h| !h.disabled())
                .map(|_| Health::Starting);
            info.addresses = spec
                .networks
                .iter()
                .map(|(net, _)| (net.clone(), format!("10.0.{}.{}", n / 250, n % 250 + 2)))
                .collect();
            let name = info.name.clone();
            w.calls.push(format!("start {name}"));
        }
        self.emit(id, "start");
        Ok(())
    }

    async fn stop(&self, id: &str, _grace: Duration) -> Result<()> {
        {
            let mut w = self.world();
            let Some((_, info)) = w.containers.get_mut(id) else {
                return Err(Error::NotFound(id.to_string()));
            };
            if info.state == State::Running {
                info.state = State::Exited;
                info.exit_code = Some(0);
            }
            let name = info.name.clone();
            w.calls.push(format!("stop {name}"));
        }
        self.emit(id, "die");
        Ok(())
    }

    async fn pause(&self, id: &str) -> Result<()> {
        self.set_paused(id, true)
    }

    async fn unpause(&self, id: &str) -> Result<()> {
        self.set_paused(id, false)
    }

    async fn kill(&self, id: &str, _signal: &str) -> Result<()> {
        self.exit(id, 137);
        Ok(())
    }

    async fn rename(&self, id: &str, name: &str) -> Result<()> {
        let mut w = self.world();
        if w.containers.values().any(|(_, i)| i.name == name) {
            return Err(Error::Engine {
                action: format!("rename {id} to {name}"),
                message: "name already in use".into(),
            });
        }
        let Some((spec, info)) = w.containers.get_mut(id) else {
            return Err(Error::NotFound(format!("container {id}")));
        };
        let old = std::mem::replace(&mut info.name, name.to_string());
        spec.name = name.to_string();
        w.calls.push(format!("rename {old} {name}"));
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let mut w = self.world();
        if let Some((_, info)) = w.containers.remove(id) {
            w.calls.push(format!("remove {}", info.name));
        }
        Ok(())
    }

    async fn list(&self, project: &str) -> Result<Vec<ContainerInfo>> {
        let mut out: Vec<ContainerInfo> = self
            .world()
            .containers
            .values()
            .filter(|(_, i)| i.labels.get(LABEL_PROJECT).map(String::as_str) == Some(project))
            .map(|(_, i)| i.clone())
            .collect();
        out.sort_by(|a, b| (&a.service, a.replica).cmp(&(&b.service, b.replica)));
        Ok(out)
    }

    async fn projects(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .world()
            .containers
            .values()
            .filter_map(|(_, i)| i.labels.get(LABEL_PROJECT).cloned())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        self.get(id).map(|(_, i)| i)
    }

    async fn usage(&self, id: &str) -> Result<Usage> {
        Ok(Usage {
            cpu: self.world().cpu.get(id).copied().unwrap_or_default(),
            ..Usage::default()
        })
    }

    async fn top(&self, id: &str) -> Result<(Vec<String>, Vec<Vec<String>>)> {
        // One process: the container's command, as the fake runs nothing.
        let (spec, info) = self.get(id)?;
        if info.state != State::Running {
            return Err(Error::Engine {
                action: format!("top {id}"),
                message: "container is not running".into(),
            });
        }
        let cmd = spec.command.map(|c| c.join(" ")).unwrap_or(spec.image);
        Ok((
            vec!["PID".into(), "CMD".into()],
            vec![vec!["1".into(), cmd]],
        ))
    }

    fn logs(&self, id: &str, _opts: &LogOptions) -> BoxStream<'static, Result<LogLine>> {
        let line = LogLine {
            timestamp: None,
            stderr: false,
            text: format!("{id} started"),
        };
        futures_util::stream::iter(vec![Ok(line)]).boxed()
    }

    fn events(&self, _project: &str) -> BoxStream<'static, Result<Event>> {
        let rx = self.events.subscribe();
        futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => return Some((Ok(ev), rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }

    async fn exec(&self, id: &str, _spec: &ExecSpec) -> Result<Attached> {
        // The fake's containers run no processes.
        Err(Error::Engine {
            action: format!("exec in {id}"),
            message: "the fake runtime runs no processes".into(),
        })
    }

    async fn exec_resize(&self, _exec: &str, _cols: u16, _rows: u16) -> Result<()> {
        Ok(())
    }

    async fn exec_code(&self, exec: &str) -> Result<Option<i64>> {
        Err(Error::NotFound(format!("exec {exec}")))
    }

    async fn attach(&self, id: &str) -> Result<Attached> {
        Err(Error::Engine {
            action: format!("attach {id}"),
            message: "the fake runtime runs no processes".into(),
        })
    }

    async fn resize(&self, _id: &str, _cols: u16, _rows: u16) -> Result<()> {
        Ok(())
    }

    async fn wait(&self, id: &str) -> Result<i64> {
        Err(Error::NotFound(format!("wait {id}")))
    }
}

//! The control plane's HTTP/JSON API on a unix socket (mode 0600) in the state
//! directory, and the client the other commands use.
//!
//! - `GET /status`: the control plane's [`Status`].
//! - `POST /scale` with `{"web": 5}`: set replica counts.
//! - `POST /apply` with the project as JSON (the typed model): run this version; the
//!   answer names the services that roll.
//! - `POST /rollout` with `{"action": "undo", "service": "web", "to": 2}` (or `pause`,
//!   `resume`).
//! - `POST /lifecycle` with `{"action": "stop", "services": ["web"]}` (or `start`,
//!   `restart`, `pause`, `unpause`; no services: all).
//! - `POST /shutdown` with `{"remove": true, "volumes": false}`: stop (as `down`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use shoal_engine::{Command, Handle, Lifecycle, RolloutCommand, Status};
use shoal_spec::Project;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, watch};

/// Serves the API until `stop` turns true. Removes the socket file afterwards.
pub async fn serve(
    path: PathBuf,
    handle: Handle,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => a?,
            _ = stop.wait_for(|s| *s) => break,
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| route(req, handle.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

async fn route(
    req: Request<Incoming>,
    handle: Handle,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let reply = |status: StatusCode, v: Value| {
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(v.to_string())))
            .expect("a valid response"))
    };
    match (parts.method, parts.uri.path()) {
        (Method::GET, "/status") => {
            let status = handle.snapshot();
            reply(
                StatusCode::OK,
                serde_json::to_value(status).unwrap_or_default(),
            )
        }
        (Method::POST, "/scale") => {
            let Ok(counts) = serde_json::from_slice::<BTreeMap<String, u32>>(&body) else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "expected {\"service\": count}"}),
                );
            };
            match ask(&handle, |tx| Command::Scale(counts, tx)).await {
                Ok(Ok(())) => reply(StatusCode::OK, json!({})),
                Ok(Err(e)) => reply(StatusCode::BAD_REQUEST, json!({ "error": e })),
                Err(e) => reply(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": e })),
            }
        }
        (Method::POST, "/apply") => {
            let project = match serde_json::from_slice::<Project>(&body) {
                Ok(p) => p.named(),
                Err(e) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        json!({ "error": format!("expected a project: {e}") }),
                    )
                }
            };
            let answer = ask(&handle, |tx| Command::Apply(Box::new(project), tx)).await;
            match answer {
                Ok(Ok(rolling)) => reply(StatusCode::OK, json!({ "rolling": rolling })),
                Ok(Err(e)) => reply(StatusCode::BAD_REQUEST, json!({ "error": e })),
                Err(e) => reply(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": e })),
            }
        }
        (Method::POST, "/rollout") => {
            let Ok(cmd) = serde_json::from_slice::<RolloutCommand>(&body) else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "expected {\"action\": \"undo\"|\"pause\"|\"resume\", \"service\": ...}"}),
                );
            };
            match ask(&handle, |tx| Command::Rollout(cmd, tx)).await {
                Ok(Ok(said)) => reply(StatusCode::OK, json!({ "message": said })),
                Ok(Err(e)) => reply(StatusCode::BAD_REQUEST, json!({ "error": e })),
                Err(e) => reply(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": e })),
            }
        }
        (Method::POST, "/lifecycle") => {
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            let action = serde_json::from_value::<Lifecycle>(v["action"].clone());
            let services = serde_json::from_value::<Vec<String>>(v["services"].clone());
            let (Ok(action), Ok(services)) = (action, services) else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "expected {\"action\": \"stop\"|\"start\"|\"restart\"|\"pause\"|\"unpause\", \"services\": [...]}"}),
                );
            };
            match ask(&handle, |tx| Command::Lifecycle(action, services, tx)).await {
                Ok(Ok(said)) => reply(StatusCode::OK, json!({ "message": said })),
                Ok(Err(e)) => reply(StatusCode::BAD_REQUEST, json!({ "error": e })),
                Err(e) => reply(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": e })),
            }
        }
        (Method::POST, "/shutdown") => {
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            let cmd = Command::Shutdown {
                remove: v["remove"].as_bool().unwrap_or(false),
                volumes: v["volumes"].as_bool().unwrap_or(false),
            };
            let _ = handle.commands.send(cmd).await;
            reply(StatusCode::ACCEPTED, json!({}))
        }
        _ => reply(StatusCode::NOT_FOUND, json!({"error": "no such endpoint"})),
    }
}

/// Sends a command that answers, and waits for the answer.
async fn ask<T>(
    handle: &Handle,
    make: impl FnOnce(oneshot::Sender<T>) -> Command,
) -> Result<T, String> {
    let (tx, rx) = oneshot::channel();
    let stopping = || "the control plane is stopping".to_string();
    handle
        .commands
        .send(make(tx))
        .await
        .map_err(|_| stopping())?;
    rx.await.map_err(|_| stopping())
}

/// A client of a running control plane.
pub struct Client {
    path: PathBuf,
}

impl Client {
    /// The control plane behind `socket`, if one answers there.
    pub async fn connect(socket: &Path) -> Option<Client> {
        let c = Client {
            path: socket.to_path_buf(),
        };
        c.status().await.ok().map(|_| c)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let stream = UnixStream::connect(&self.path).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "shoal")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// `GET /status`.
    pub async fn status(&self) -> anyhow::Result<Status> {
        let (code, v) = self.call(Method::GET, "/status", None).await?;
        if !code.is_success() {
            bail!("control plane answered {code}");
        }
        Ok(serde_json::from_value(v)?)
    }

    /// A POST whose refusal is an error with the control plane's words.
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let (code, v) = self.call(Method::POST, path, Some(body)).await?;
        if !code.is_success() {
            bail!(
                "{}",
                v["error"].as_str().unwrap_or("the control plane refused")
            );
        }
        Ok(v)
    }

    /// `POST /scale`.
    pub async fn scale(&self, counts: &BTreeMap<String, u32>) -> anyhow::Result<()> {
        self.post("/scale", json!(counts)).await.map(|_| ())
    }

    /// `POST /apply`: the services that roll.
    pub async fn apply(&self, project: &Project) -> anyhow::Result<Vec<String>> {
        let v = self.post("/apply", serde_json::to_value(project)?).await?;
        Ok(serde_json::from_value(v["rolling"].clone()).unwrap_or_default())
    }

    /// `POST /rollout`: what the control plane did.
    pub async fn rollout(&self, cmd: &RolloutCommand) -> anyhow::Result<String> {
        let v = self.post("/rollout", serde_json::to_value(cmd)?).await?;
        Ok(v["message"].as_str().unwrap_or_default().to_string())
    }

    /// `POST /lifecycle`: what the control plane did.
    pub async fn lifecycle(
        &self,
        action: Lifecycle,
        services: &[String],
    ) -> anyhow::Result<String> {
        let body = json!({ "action": action, "services": services });
        let v = self.post("/lifecycle", body).await?;
        Ok(v["message"].as_str().unwrap_or_default().to_string())
    }

    /// `POST /shutdown`, then waits until the control plane is gone.
    pub async fn shutdown(&self, remove: bool, volumes: bool) -> anyhow::Result<()> {
        self.call(
            Method::POST,
            "/shutdown",
            Some(json!({"remove": remove, "volumes": volumes})),
        )
        .await?;
        while UnixStream::connect(&self.path).await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

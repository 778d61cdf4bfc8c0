//! An `Upgrade` request (WebSocket and the like): a fresh connection to one replica;
//! on `101` the client's and the replica's connections are joined and bytes flow both
//! ways until either side closes. Any other answer is passed on as a response.

use std::time::Duration;

use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

use crate::body::ProxyBody;
use crate::clock::now_ms;
use crate::endpoint::InFlight;
use crate::error::ProxyError;
use crate::exchange::{self, Failure};
use crate::forward::choose;
use crate::http::REPLAY_LIMIT;
use crate::rewrite::strip_hop_by_hop;
use crate::route::Route;
use crate::upstream::{self, Outgoing};

/// An `Upgrade` request (WebSocket): a fresh connection to one replica; on `101` the
/// two connections are joined and bytes flow both ways until either side closes.
pub async fn tunnel(
    parts: Parts,
    body: ProxyBody,
    client: hyper::upgrade::OnUpgrade,
    key: Option<u64>,
    route: &Route,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Some(ep) = choose(route, key, &mut Vec::new()).await else {
        return Err(ProxyError::no_replica());
    };
    let mut conn = match upstream::connect(ep.addr, &ep.stats, route.config.connect_timeout).await {
        Ok(c) => c,
        Err(e) => {
            ep.record(false, &route.config.eject, now_ms());
            return Err(ProxyError::connect(ep.addr, e));
        }
    };
    let guard = InFlight::start(ep.clone());
    let head = match exchange::send(&mut conn, &Outgoing::new(&parts, body.length()), body).await {
        Ok(()) => conn.read_head(&parts.method).await,
        Err(Failure::Client(e)) => {
            return Err(ProxyError::client(format!("malformed request body: {e}")));
        }
        Err(Failure::Replica(e) | Failure::Unsent(e, _)) => Err(e),
    };
    let head = match head {
        Ok(h) => h,
        Err(e) => {
            ep.record(false, &route.config.eject, now_ms());
            return Err(ProxyError::replica(format!("{}: {e}", ep.addr)));
        }
    };
    ep.record(true, &route.config.eject, now_ms());
    ep.stats.record(Duration::ZERO, false);
    if head.parts.status != StatusCode::SWITCHING_PROTOCOLS {
        let mut resp = exchange::respond(conn, head, guard, REPLAY_LIMIT as u64)
            .await
            .map_err(|e| ProxyError::replica(format!("{}: {e}", ep.addr)))?;
        strip_hop_by_hop(resp.headers_mut(), false);
        return Ok(resp);
    }
    let (mut upstream, early, open) = conn.into_upgraded();
    tokio::spawn(async move {
        let _guard = (guard, open);
        let Ok(client) = client.await else { return };
        let mut client = TokioIo::new(client);
        // What the replica sent right after its 101 goes first.
        if !early.is_empty() && client.write_all(&early).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
    Ok(Response::from_parts(head.parts, ProxyBody::Empty))
}

//! Per-connection forwarding: a connection is joined to one replica and bytes flow
//! both ways until either side closes. A replica that refuses is skipped for the next.

use std::time::Instant;

use crate::client::Client;
use crate::clock::now_ms;
use crate::endpoint::InFlight;
use crate::route::Route;

/// Serves one client connection over TCP.
pub async fn serve_connection(mut client: Client, route: &Route) {
    let start = Instant::now();
    route.stats.arrive();
    let deadline = start + route.config.wait_for_ready;
    let mut tried: Vec<std::sync::Arc<crate::endpoint::Endpoint>> = Vec::new();
    loop {
        let set = route.backends.endpoints();
        let Some(ep) = crate::balance::pick(
            &set,
            &route.config.strategy,
            None,
            &route.backends.rr,
            &tried,
            now_ms(),
        ) else {
            let everything_tried = !tried.is_empty()
                && set
                    .iter()
                    .all(|e| tried.iter().any(|t| std::sync::Arc::ptr_eq(t, e)));
            if everything_tried || Instant::now() >= deadline {
                route.stats.record(start.elapsed(), true);
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            continue;
        };
        match crate::upstream::open(ep.addr, &ep.stats, route.config.connect_timeout).await {
            Ok(mut upstream) => {
                ep.record(true, &route.config.eject, now_ms());
                let _guard = (InFlight::start(ep.clone()), ep.stats.connect());
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                ep.stats.record(start.elapsed(), false);
                route.stats.record(start.elapsed(), false);
                return;
            }
            Err(_) => {
                ep.record(false, &route.config.eject, now_ms());
                tried.push(ep.clone());
            }
        }
    }
}

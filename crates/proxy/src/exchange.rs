//! One exchange with a replica over an upstream connection, in terms of the data
//! path's body: the request written (a body in memory in the same write, a stream
//! after the head), and the response handed on (a small body read whole so the
//! connection goes back at once, any other streamed to the client).

use std::io;

use hyper::Response;

use crate::body::{BoxError, ProxyBody, Streaming};
use crate::endpoint::InFlight;
use crate::upstream::{Conn, Decoder, Framing, Head, Outgoing, Sending};

/// How sending a request failed.
pub enum Failure {
    /// Nothing of the request reached the replica's application: it may go to
    /// another replica whatever its method. The body comes back for that.
    Unsent(io::Error, ProxyBody),
    /// The replica failed after the request head was written.
    Replica(io::Error),
    /// The client's body failed while it was streamed.
    Client(BoxError),
}

/// Sends `request` with `body` on `conn`.
pub async fn send(conn: &mut Conn, request: &Outgoing, body: ProxyBody) -> Result<(), Failure> {
    let in_memory = match &body {
        ProxyBody::Full(Some(bytes)) => Some(bytes.as_ref()),
        _ => None,
    };
    if let Err(e) = conn.write(request, in_memory).await {
        return Err(Failure::Unsent(e, body));
    }
    if matches!(body, ProxyBody::Empty | ProxyBody::Full(_)) {
        return Ok(());
    }
    conn.stream(body, request.chunked())
        .await
        .map_err(|e| match e {
            Sending::Client(e) => Failure::Client(e),
            Sending::Replica(e) => Failure::Replica(e),
        })
}

/// The response for the client: a body of known length up to `whole_limit` is read
/// first and the connection goes back to its replica's pool at once; any other body
/// streams and the connection goes back after its last byte.
pub async fn respond(
    mut conn: Conn,
    head: Head,
    guard: InFlight,
    whole_limit: u64,
) -> Result<Response<ProxyBody>, io::Error> {
    let Head {
        parts,
        framing,
        keep_alive,
    } = head;
    let body = match framing {
        Framing::Length(0) => {
            conn.done(keep_alive, &guard.endpoint().pool);
            ProxyBody::Empty
        }
        Framing::Length(n) if n <= whole_limit => {
            let bytes = conn.read_exact(n as usize).await?;
            conn.done(keep_alive, &guard.endpoint().pool);
            ProxyBody::Full(Some(bytes))
        }
        _ => {
            let stream = Streaming::new(conn, Decoder::new(framing), keep_alive, guard);
            return Ok(Response::from_parts(
                parts,
                ProxyBody::Upstream(Box::new(stream)),
            ));
        }
    };
    drop(guard);
    Ok(Response::from_parts(parts, body))
}

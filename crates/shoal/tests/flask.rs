//! The article's own example (`examples/flask`): its Dockerfile builds as written
//! (`FROM python:3.11-slim`, pip from PyPI), it comes up in three replicas behind
//! shoal with PostgreSQL on a named volume, every replica says "Hello, world!", the
//! count goes up, and `down -v` leaves nothing.

mod common;

use std::collections::HashSet;

use common::get;

#[test]
fn the_articles_flask_example_answers_from_every_replica() {
    // The Python base image: pulled where a registry is reachable, else made from
    // the Debian base (scripts/test.sh runs this before the tests; again is a no-op).
    let made = std::process::Command::new("bash")
        .arg(common::root().join("scripts/python-base.sh"))
        .status()
        .expect("bash");
    assert!(made.success(), "scripts/python-base.sh failed");

    let (p, port) = common::example("flask", "flask", "FLASK_PORT");
    let up = p.shoal(&["up", "-d"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );

    let mut seen = HashSet::new();
    for _ in 0..12 {
        let r = get(port, "/").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "Hello, world!\n"));
        seen.insert(r.headers["x-replica"].clone());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    let visits = |r: common::Response| -> u64 {
        r.body
            .trim()
            .strip_prefix("visits: ")
            .unwrap()
            .parse()
            .unwrap()
    };
    let first = visits(get(port, "/visits").unwrap());
    assert_eq!(visits(get(port, "/visits").unwrap()), first + 1);

    p.ok(&["down", "-v"]);
    assert!(p.leftovers().is_empty(), "{:?}", p.leftovers());
}

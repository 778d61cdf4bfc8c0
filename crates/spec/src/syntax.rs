//! The small string syntaxes inside Compose values: durations, byte sizes, the short
//! forms of `ports` and `volumes`.

use std::time::Duration;

use crate::model::{Mount, MountKind, Port};

/// Parses a Go-style duration: `1m30s`, `500ms`, `1.5s`, `2h`. A bare number is
/// seconds.
pub fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    // What a Duration cannot hold is refused, not a panic (found by the fuzzer).
    let fits = |secs: f64| {
        Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is too long a duration"))
    };
    if let Ok(secs) = s.parse::<f64>() {
        if secs >= 0.0 && secs.is_finite() {
            return fits(secs);
        }
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("`{s}` is not a duration"));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("`{s}` is not a duration"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("`{s}` needs a unit after {n}")),
            u => return Err(format!("unknown unit `{u}` in `{s}`")),
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    fits(total)
}

/// Parses a byte size: `512m`, `1.5GB`, `2g`, `1024` (bytes). Units are powers of 1024,
/// as the engine reads them.
pub fn bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let n: f64 = t[..num_len]
        .parse()
        .map_err(|_| format!("`{s}` is not a size"))?;
    let scale: u64 = match t[num_len..].trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => return Err(format!("unknown unit `{u}` in `{s}`")),
    };
    Ok((n * scale as f64) as u64)
}

/// Parses the short form of a port: `[HOST_IP:][HOST[-HOST_END]:]CONTAINER[-END][/PROTO]`.
/// A container range yields one entry per port.
pub fn short_port(s: &str) -> Result<Vec<Port>, String> {
    let (spec, protocol) = match s.rsplit_once('/') {
        Some((spec, proto)) => (spec, proto.to_string()),
        None => (s, "tcp".to_string()),
    };
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("unknown protocol `{protocol}` in `{s}`"));
    }
    // An IPv6 host address is written in brackets.
    let (host_ip, rest) = if let Some(r) = spec.strip_prefix('[') {
        let (ip, rest) = r
            .split_once("]:")
            .ok_or_else(|| format!("unclosed `[` in `{s}`"))?;
        (ip.to_string(), rest)
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), spec),
            3 => (parts[0].to_string(), &spec[parts[0].len() + 1..]),
            _ => return Err(format!("`{s}` has too many `:`")),
        }
    };
    let (published, target) = match rest.split_once(':') {
        Some((p, t)) => (Some(p), t),
        None => (None, rest),
    };
    let (t0, t1) = range(target).map_err(|e| format!("{e} in `{s}`"))?;
    let published = match published {
        Some("") | None => None,
        Some(p) => Some(range(p).map_err(|e| format!("{e} in `{s}`"))?),
    };
    let count = t1 - t0 + 1;
    if let Some((p0, p1)) = published {
        let pcount = p1 - p0 + 1;
        if count > 1 && pcount != count {
            return Err(format!(
                "`{s}` maps {count} container ports to {pcount} host ports"
            ));
        }
    }
    Ok((0..count)
        .map(|i| Port {
            target: t0 + i,
            published: published.map(|(p0, p1)| {
                if count > 1 {
                    (p0 + i).to_string()
                } else if p0 == p1 {
                    p0.to_string()
                } else {
                    format!("{p0}-{p1}")
                }
            }),
            host_ip: host_ip.clone(),
            protocol: protocol.clone(),
            mode: "ingress".into(),
        })
        .collect())
}

fn range(s: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{p}` is not a port number (1-65535)"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if b < a {
                return Err(format!("range `{s}` ends before it starts"));
            }
            Ok((a, b))
        }
        None => port(s).map(|p| (p, p)),
    }
}

/// Parses the short form of a volume: `[SOURCE:]TARGET[:MODE]`. A source that is a
/// path (starts with `.`, `/` or `~`) makes a bind mount, resolved against `dir`;
/// anything else names a volume.
pub fn short_volume(s: &str, dir: &std::path::Path) -> Result<Mount, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [a, b] if b.starts_with('/') => (Some(*a), *b, None),
        [t, m] => (None, *t, Some(*m)),
        [a, b, m] => (Some(*a), *b, Some(*m)),
        _ => return Err(format!("`{s}` has too many `:`")),
    };
    if !target.starts_with('/') {
        return Err(format!(
            "the container path `{target}` in `{s}` must be absolute"
        ));
    }
    let mut read_only = false;
    for opt in mode.unwrap_or("").split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => read_only = true,
            "rw" | "z" | "Z" | "cached" | "delegated" | "consistent" | "nocopy" | "rprivate"
            | "private" | "rshared" | "shared" | "rslave" | "slave" => {}
            o => return Err(format!("unknown volume option `{o}` in `{s}`")),
        }
    }
    let (kind, source) = match source {
        None => (MountKind::Volume, None),
        Some(src) if is_path(src) => (MountKind::Bind, Some(host_path(src, dir))),
        Some(src) => (MountKind::Volume, Some(src.to_string())),
    };
    Ok(Mount {
        kind,
        source,
        target: target.to_string(),
        read_only,
    })
}

/// True when a volume source is a host path rather than a volume name.
pub fn is_path(src: &str) -> bool {
    src.starts_with('.') || src.starts_with('/') || src.starts_with('~')
}

/// Resolves a host path against the project directory (and `~` against $HOME).
pub fn host_path(src: &str, dir: &std::path::Path) -> String {
    if let Some(rest) = src.strip_prefix('~') {
        let home = std::env::var("HOME").unwrap_or_default();
        return format!("{home}{rest}");
    }
    let p = std::path::Path::new(src);
    if p.is_absolute() {
        return src.to_string();
    }
    let mut out = dir.to_path_buf();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn durations() {
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(duration("10").unwrap(), Duration::from_secs(10));
        assert!(duration("10x").is_err());
        assert!(duration("s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes("512m").unwrap(), 512 << 20);
        assert_eq!(bytes("1GB").unwrap(), 1 << 30);
        assert_eq!(bytes("1024").unwrap(), 1024);
        assert!(bytes("lots").is_err());
    }

    #[test]
    fn ports() {
        let p = short_port("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(p[0].host_ip, "127.0.0.1");
        assert_eq!(p[0].published_port(), Some(8080));
        assert_eq!(p[0].target, 80);
        assert_eq!(p[0].protocol, "udp");
        let p = short_port("8000-8002:80-82").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!((p[2].published_port(), p[2].target), (Some(8002), 82));
        let p = short_port("9000-9010:80").unwrap();
        assert_eq!(p[0].published_range(), Some((9000, 9010)));
        let p = short_port("[::1]:53:53").unwrap();
        assert_eq!(p[0].host_ip, "::1");
        assert_eq!(short_port("3000").unwrap()[0].published, None);
        assert!(short_port("80:70000").is_err());
        assert!(short_port("1-3:4-5").is_err());
    }

    #[test]
    fn volumes() {
        let dir = Path::new("/srv/app");
        let m = short_volume("./data:/data:ro", dir).unwrap();
        assert_eq!(m.kind, MountKind::Bind);
        assert_eq!(m.source.as_deref(), Some("/srv/app/data"));
        assert!(m.read_only);
        let m = short_volume("db:/var/lib/db", dir).unwrap();
        assert_eq!(m.kind, MountKind::Volume);
        assert_eq!(m.source.as_deref(), Some("db"));
        let m = short_volume("/cache", dir).unwrap();
        assert_eq!(m.source, None);
        assert!(short_volume("db:relative", dir).is_err());
    }
}

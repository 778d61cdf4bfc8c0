//! The build context: a tarball of the context directory, less what `.dockerignore`
//! excludes.
//!
//! `.dockerignore` lines are patterns relative to the context: `*` and `?` within one
//! path segment, `**` across any number of segments, a leading `!` re-includes, the
//! last matching line wins, and a pattern that matches a directory excludes all of it.
//! The Dockerfile and `.dockerignore` are always sent: the engine needs them.

use std::path::Path;

use crate::{Error, Result};

/// One `.dockerignore` line.
struct Rule {
    segments: Vec<String>,
    include: bool,
}

/// The rules of a `.dockerignore`.
pub struct Ignore {
    rules: Vec<Rule>,
}

impl Ignore {
    /// Parses a `.dockerignore`.
    pub fn parse(text: &str) -> Ignore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (include, pat) = match l.strip_prefix('!') {
                    Some(p) => (true, p.trim()),
                    None => (false, l),
                };
                let pat = pat.trim_start_matches('/').trim_end_matches('/');
                let segments = pat
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(String::from)
                    .collect();
                Rule { segments, include }
            })
            .collect();
        Ignore { rules }
    }

    /// True when `path` (relative, `/`-separated) is excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for rule in &self.rules {
            // A rule matches the path or one of its parent directories.
            let hit = (1..=parts.len()).any(|n| matches(&rule.segments, &parts[..n]));
            if hit {
                excluded = !rule.include;
            }
        }
        excluded
    }

    /// True when some `!` rule could re-include something below `dir`: then an
    /// excluded directory must still be walked.
    fn may_reinclude_below(&self, dir: &str) -> bool {
        self.rules.iter().any(|r| {
            r.include && {
                let prefix = r.segments.join("/");
                prefix.starts_with(dir) || r.segments.iter().any(|s| s.contains('*'))
            }
        })
    }
}

fn matches(pattern: &[String], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(p), _) if p == "**" => {
            (0..=path.len()).any(|skip| matches(&pattern[1..], &path[skip..]))
        }
        (Some(p), Some(s)) => {
            glob(p.as_bytes(), s.as_bytes()) && matches(&pattern[1..], &path[1..])
        }
        _ => false,
    }
}

/// `*` and `?` within one segment; `[...]` classes are taken literally.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(b'\\'), Some(c)) if p.get(1) == Some(c) => glob(&p[2..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// Tars the context directory.
pub fn tarball(dir: &Path, dockerfile: &str) -> Result<Vec<u8>> {
    let err = |source| Error::Context {
        path: dir.display().to_string(),
        source,
    };
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => Ignore::parse(&text),
        Err(_) => Ignore { rules: Vec::new() },
    };
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    // The engine's tar reader refuses GNU sparse entries; a file with holes (as `cp`
    // makes of a binary) goes in whole.
    builder.sparse(false);
    let always = [dockerfile.trim_start_matches("./"), ".dockerignore"];
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let abs = if rel.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(&rel)
        };
        let mut entries: Vec<_> = std::fs::read_dir(&abs)
            .map_err(err)?
            .collect::<std::io::Result<_>>()
            .map_err(err)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let kind = entry.file_type().map_err(err)?;
            let excluded = ignore.excluded(&path) && !always.contains(&path.as_str());
            if kind.is_dir() {
                if !excluded {
                    builder.append_dir(&path, entry.path()).map_err(err)?;
                }
                if !excluded || ignore.may_reinclude_below(&path) {
                    stack.push(path);
                }
            } else if !excluded {
                builder
                    .append_path_with_name(entry.path(), &path)
                    .map_err(err)?;
            }
        }
    }
    builder.into_inner().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let ig = Ignore::parse("# c\ntarget\n*.log\n!keep.log\ndocs/**/*.md\n/secret\n");
        assert!(ig.excluded("target"));
        assert!(ig.excluded("target/debug/x"));
        assert!(ig.excluded("a.log"));
        assert!(!ig.excluded("keep.log"));
        assert!(!ig.excluded("sub/a.log"), "* does not cross directories");
        assert!(ig.excluded("docs/a.md"));
        assert!(ig.excluded("docs/x/y/a.md"));
        assert!(ig.excluded("secret"));
        assert!(!ig.excluded("src/main.rs"));
    }

    #[test]
    fn tarball_honours_dockerignore() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("src")).unwrap();
        std::fs::create_dir_all(d.join("target/debug")).unwrap();
        std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(d.join(".dockerignore"), "target\nDockerfile\n").unwrap();
        std::fs::write(d.join("src/main.rs"), "fn main() {}\n").unwrap();
        std::fs::write(d.join("target/debug/big"), "x").unwrap();
        let tar = tarball(d, "Dockerfile").unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.contains(&"Dockerfile".to_string()), "{names:?}");
        assert!(names.contains(&"src/main.rs".to_string()), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("target")), "{names:?}");
    }

    #[test]
    fn files_with_holes_go_in_as_regular_files() {
        use std::io::{Seek, SeekFrom, Write};
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("Dockerfile"), "FROM scratch\n").unwrap();
        let mut f = std::fs::File::create(d.join("holey")).unwrap();
        f.write_all(b"start").unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(b"end").unwrap();
        drop(f);
        let tar = tarball(d, "Dockerfile").unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        for e in archive.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!(e.header().entry_type(), tar::EntryType::Regular);
            if e.path().unwrap().ends_with("holey") {
                assert_eq!(e.size(), (1 << 20) + 3);
            }
        }
    }
}

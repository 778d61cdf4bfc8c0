//! The project's state directory: the control plane's socket, its log, and the
//! replica counts set by hand.

use std::path::PathBuf;

/// `$SHOAL_STATE_DIR/<project>`, else `$XDG_STATE_HOME/shoal/<project>`, else
/// `~/.local/state/shoal/<project>`.
pub fn dir(project: &str) -> PathBuf {
    let base = std::env::var_os("SHOAL_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("shoal")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/shoal")))
        .unwrap_or_else(|| std::env::temp_dir().join("shoal"));
    base.join(project)
}

/// The control plane's API socket.
pub fn socket(project: &str) -> PathBuf {
    dir(project).join("control.sock")
}

/// Where a detached control plane writes its log.
pub fn log_file(project: &str) -> PathBuf {
    dir(project).join("control-plane.log")
}

/// Creates the state directory, readable by its owner only.
pub fn create(project: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let d = dir(project);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)?;
    Ok(d)
}

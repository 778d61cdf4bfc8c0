//! `shoal images [SVC...] [--format json]`: the image each replica runs, as
//! `docker compose images` prints it (with `-p NAME` alone, from the labels).

use std::process::ExitCode;

use serde_json::json;

use crate::cli::{Format, Global, ImagesArgs};

pub async fn run(global: &Global, args: &ImagesArgs) -> anyhow::Result<ExitCode> {
    let (name, project, _) = super::project_or_name(global)?;
    if let Some(p) = &project {
        super::check_services(p, &args.services)?;
    }
    let rt = super::engine().await?;
    super::known(&name, project.as_ref(), rt.as_ref()).await?;
    let mut rows = Vec::new();
    for c in rt.list(&name).await? {
        if !args.services.is_empty() && !args.services.contains(&c.service) {
            continue;
        }
        let info = rt.image_info(&c.image).await?;
        let (repository, tag) = split_tag(&c.image);
        rows.push(json!({
            "container": c.name,
            "service": c.service,
            "repository": repository,
            "tag": tag,
            "id": info.as_ref().map(|i| i.id.clone()),
            "size": info.as_ref().map(|i| i.size),
        }));
    }
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<32} {:<32} {:<10} {:<14} {:>8}",
        "CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"
    );
    for r in &rows {
        let id = r["id"]
            .as_str()
            .map(|i| i.trim_start_matches("sha256:").chars().take(12).collect())
            .unwrap_or_else(|| "-".to_string());
        let size = r["size"]
            .as_u64()
            .map(crate::dashboard::bytes_short)
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<32} {:<32} {:<10} {:<14} {:>8}",
            r["container"].as_str().unwrap_or_default(),
            r["repository"].as_str().unwrap_or_default(),
            r["tag"].as_str().unwrap_or_default(),
            id,
            size
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `repo:tag` into its parts (`latest` when untagged; a registry's port is not a tag).
fn split_tag(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags() {
        assert_eq!(super::split_tag("web"), ("web", "latest"));
        assert_eq!(super::split_tag("nginx:1.25"), ("nginx", "1.25"));
        assert_eq!(
            super::split_tag("localhost:5000/app"),
            ("localhost:5000/app", "latest")
        );
    }
}

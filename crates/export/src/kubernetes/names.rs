//! Kubernetes names from compose names.

/// A DNS label (RFC 1123, as Kubernetes names objects): lower case, `_` and `.` as
/// `-`, other characters dropped, at most 63 characters, starting and ending with a
/// letter or digit.
pub fn dns_label(name: &str) -> String {
    let mut out: String = name
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => Some(c),
            'A'..='Z' => Some(c.to_ascii_lowercase()),
            '_' | '.' => Some('-'),
            _ => None,
        })
        .collect();
    out.truncate(63);
    let out = out.trim_matches('-');
    if out.is_empty() {
        "x".into()
    } else {
        out.to_string()
    }
}

/// Whole seconds, rounded up, for the API's `int32` second fields.
pub fn seconds(d: std::time::Duration) -> i32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(s).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(dns_label("web"), "web");
        assert_eq!(dns_label("My_DB.v2"), "my-db-v2");
        assert_eq!(dns_label("_x_"), "x");
        assert_eq!(dns_label(&"a".repeat(80)).len(), 63);
        assert_eq!(seconds(std::time::Duration::from_millis(500)), 1);
        assert_eq!(seconds(std::time::Duration::from_secs(20)), 20);
    }
}

//! The AWS profile named with `--profile`: the one check that it exists (the SDK would
//! otherwise fall back to other credentials without a word), and the one way to say it does
//! not, before any request and when the SDK finds out itself.

/// Whether the AWS profile `name` is defined in the shared config or credentials file (the
/// SDK would otherwise fall back to other credentials without a word).
fn profile_defined(name: &str) -> bool {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let headers = [
        (file("AWS_CONFIG_FILE", "config"), true),
        (file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), false),
    ];
    headers.iter().any(|(path, is_config)| {
        let Some(text) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) else {
            return false;
        };
        text.lines().any(|line| {
            let Some(inner) = line
                .trim()
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
            else {
                return false;
            };
            let inner = inner.trim();
            let section = if *is_config && inner != "default" {
                inner.strip_prefix("profile").map(str::trim)
            } else {
                Some(inner)
            };
            section == Some(name)
        })
    })
}

/// The words for a profile that is not defined.
pub(super) fn not_defined(profile: &str) -> String {
    format!(
        "the AWS profile `{profile}` is not defined in ~/.aws/config or ~/.aws/credentials (or the files AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE name)"
    )
}

/// Why `--profile NAME` cannot be used, when it is not defined.
pub(crate) fn undefined_profile(name: &str) -> Option<String> {
    (!profile_defined(name)).then(|| not_defined(name))
}

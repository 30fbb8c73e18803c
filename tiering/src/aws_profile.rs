//! Static credentials and region from AWS shared config files (`~/.aws/credentials`,
//! `~/.aws/config`, `AWS_PROFILE`), as the AWS CLI and SDKs read them, for users who
//! configure S3 access that way. `object_store` reads the environment, container and
//! instance credentials itself, but not these files.
//!
//! Supported: `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`, `region`
//! and `endpoint_url` of the selected profile. Not supported: role assumption and SSO
//! (`role_arn`, `sso_*`, `credential_process`); such a profile is reported, not guessed at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a profile provides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProfileSettings {
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key: Option<String>,
    pub(crate) session_token: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) endpoint_url: Option<String>,
    /// Keys of the profile that need features this reader does not have (`role_arn`, ...).
    pub(crate) unsupported: Vec<String>,
}

type Sections = BTreeMap<String, BTreeMap<String, String>>;

/// Parses the INI dialect of AWS config files: `[section]`, `key = value`, `#`/`;` comments.
fn parse_ini(text: &str) -> Sections {
    let mut sections = Sections::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_string();
            sections.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            sections
                .entry(section.clone())
                .or_default()
                .insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    sections
}

fn read(path: &Path) -> Sections {
    std::fs::read_to_string(path)
        .map(|text| parse_ini(&text))
        .unwrap_or_default()
}

/// The settings of `profile` from the credentials file and the config file (in the config
/// file a non-default profile's section is `[profile NAME]`). The credentials file wins.
pub(crate) fn load(profile: &str, credentials_file: &Path, config_file: &Path) -> ProfileSettings {
    let credentials = read(credentials_file);
    let config = read(config_file);
    let config_section = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let empty = BTreeMap::new();
    let from_credentials = credentials.get(profile).unwrap_or(&empty);
    let from_config = config.get(&config_section).unwrap_or(&empty);
    let get = |key: &str| {
        from_credentials
            .get(key)
            .or_else(|| from_config.get(key))
            .cloned()
    };
    let unsupported = from_credentials
        .keys()
        .chain(from_config.keys())
        .filter(|k| {
            matches!(
                k.as_str(),
                "role_arn" | "credential_process" | "source_profile"
            ) || k.starts_with("sso_")
        })
        .cloned()
        .collect();
    ProfileSettings {
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key"),
        session_token: get("aws_session_token"),
        region: get("region"),
        endpoint_url: get("endpoint_url"),
        unsupported,
    }
}

/// The selected profile from the standard locations and environment variables
/// (`AWS_PROFILE`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`, `HOME`).
pub(crate) fn load_from_environment() -> ProfileSettings {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_string());
    let credentials = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/credentials"));
    let config = std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/config"));
    load(&profile, &credentials, &config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_come_from_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(
            &credentials,
            "[default]\naws_access_key_id = AKIDEFAULT\naws_secret_access_key=secret0\n\n\
             # a comment\n[dev]\naws_access_key_id = AKIDEV\naws_secret_access_key = s3cr3t\n\
             aws_session_token = tok\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-1\n[profile dev]\nregion=us-west-2\n\
             endpoint_url = http://127.0.0.1:4566\n[profile sso]\nsso_start_url = x\n",
        )
        .unwrap();
        let dev = load("dev", &credentials, &config);
        assert_eq!(dev.access_key_id.as_deref(), Some("AKIDEV"));
        assert_eq!(dev.secret_access_key.as_deref(), Some("s3cr3t"));
        assert_eq!(dev.session_token.as_deref(), Some("tok"));
        assert_eq!(dev.region.as_deref(), Some("us-west-2"));
        assert_eq!(dev.endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
        assert!(dev.unsupported.is_empty());
        let default = load("default", &credentials, &config);
        assert_eq!(default.access_key_id.as_deref(), Some("AKIDEFAULT"));
        assert_eq!(default.region.as_deref(), Some("eu-west-1"));
        let sso = load("sso", &credentials, &config);
        assert_eq!(sso.unsupported, vec!["sso_start_url".to_string()]);
        let missing = load("nope", &dir.path().join("x"), &dir.path().join("y"));
        assert_eq!(missing, ProfileSettings::default());
    }
}

//! What the CLI commands that talk to a cluster share: connecting with the security flags,
//! and output helpers. (Its own module, so that commands do not import each other.)

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use super::cluster::Client;
use super::kafka_client::ClientOptions;
use super::kafka_client::transport::Security;
use crate::config::KafkaClientArgs;

/// What `--execute` refuses and what the broker answers to a standalone commit while the
/// group has members.
pub(super) const ACTIVE_MEMBERS_HINT: &str = "group has active members; stop its consumers first";

/// Connects to the cluster `args` name, with their security settings (checked here: a bad
/// combination stops the command before any connection).
pub(super) async fn connect(args: &KafkaClientArgs) -> anyhow::Result<Client> {
    let security_args = args.security.clone();
    // Reads the password file and the TLS files (or the system's CA certificates).
    let security = tokio::task::spawn_blocking(move || -> anyhow::Result<Security> {
        let config = security_args.validate()?;
        Security::load(&config).context("set up TLS")
    })
    .await
    .context("read the security settings")??;
    let protocol = security.protocol();
    let options = ClientOptions {
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        security,
        ..ClientOptions::default()
    };
    Client::connect(&args.bootstrap, options)
        .await
        .map_err(|err| {
            let hint = err
                .connect_hint()
                .map(|hint| format!(" ({hint})"))
                .unwrap_or_default();
            anyhow::Error::new(err).context(format!(
                "connect to the cluster at {} over {protocol}{hint}",
                args.bootstrap
            ))
        })
}

pub(super) fn json_text(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a serde_json::Value serializes");
    text.push('\n');
    text
}

pub(super) fn or_dash(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

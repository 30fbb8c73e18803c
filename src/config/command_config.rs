//! `--command-config FILE`: the Kafka client properties file that Kafka's tools take
//! (`kafka-topics.sh --command-config`) and librdkafka's (`kcat -F`), read for the
//! settings the CLI's security flags have. Java's and librdkafka's names are both
//! understood: `security.protocol`, `sasl.mechanism`, `sasl.jaas.config` (username and
//! password of the SCRAM or PLAIN login module) or `sasl.username`/`sasl.password`,
//! `ssl.truststore.location` (PEM only) or `ssl.ca.location`, `ssl.keystore.location`
//! (PEM only) or `ssl.certificate.location` with `ssl.key.location`. Other keys are
//! ignored; settings the CLI cannot honour (JKS stores, encrypted keys, no host name
//! verification) are refused rather than ignored.
//!
//! **Invariant:** an error never quotes the value of a key that may hold a password.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::security::listener::SecurityProtocol;
use crate::security::sasl::SaslMechanism;

/// A password, kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself, for the SASL exchange only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Largest properties file read (a client configuration is a few hundred bytes).
const FILE_BYTES_MAX: u64 = 1024 * 1024;

/// A setting read from the file, with the key it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromFile<T> {
    pub value: T,
    pub key: &'static str,
}

/// The security settings a properties file gives (`None`: not given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandConfig {
    pub protocol: Option<FromFile<SecurityProtocol>>,
    pub mechanism: Option<FromFile<SaslMechanism>>,
    pub username: Option<FromFile<String>>,
    pub password: Option<FromFile<Password>>,
    pub tls_ca: Option<FromFile<PathBuf>>,
    pub tls_cert: Option<FromFile<PathBuf>>,
    pub tls_key: Option<FromFile<PathBuf>>,
    /// Keys of the file that mean nothing here (Kafka's tools warn about them too).
    pub ignored: Vec<String>,
}

/// Reads and interprets the properties file at `path`. Blocking.
pub fn read(path: &Path) -> anyhow::Result<CommandConfig> {
    let name = path.display();
    let file =
        std::fs::File::open(path).with_context(|| format!("open --command-config {name}"))?;
    let mut bytes = Vec::new();
    file.take(FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("read --command-config {name}"))?;
    if bytes.len() as u64 > FILE_BYTES_MAX {
        bail!("--command-config {name} is larger than {FILE_BYTES_MAX} bytes");
    }
    // Java reads properties files as ISO-8859-1 or UTF-8; the settings here are ASCII.
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("--command-config {name} is not UTF-8"))?;
    parse(&properties(&text)).with_context(|| format!("--command-config {name}"))
}

/// `key=value`, `key: value` or `key value` lines as `java.util.Properties` reads them:
/// `#` and `!` comments, a trailing backslash continues the line, `\t \n \r \f \uXXXX` and
/// `\x` escapes. A later key replaces an earlier one.
fn properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(first) = lines.next() {
        let mut line = first.trim_start().to_string();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        while ends_in_escape(&line) {
            line.pop();
            match lines.next() {
                Some(next) => line.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_key_value(&line);
        out.insert(unescape(key), unescape(value));
    }
    out
}

/// Whether `line` ends with an odd number of backslashes (an escaped line break).
fn ends_in_escape(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Splits at the first unescaped `=`, `:` or white space; the separator and the white space
/// around it are dropped.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (idx, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' | '\u{c}' => {
                let key = &line[..idx];
                let mut rest = line[idx..].trim_start_matches([' ', '\t', '\u{c}']);
                if c.is_whitespace() {
                    rest = rest
                        .strip_prefix(['=', ':'])
                        .unwrap_or(rest)
                        .trim_start_matches([' ', '\t', '\u{c}']);
                } else {
                    rest = rest[1..].trim_start_matches([' ', '\t', '\u{c}']);
                }
                return (key, rest);
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    // Java refuses a malformed \u escape; keeping the text is as good
                    // here: no key the CLI reads contains one.
                    None => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn from_file<T>(value: T, key: &'static str) -> Option<FromFile<T>> {
    Some(FromFile { value, key })
}

/// Interprets the keys the CLI knows.
fn parse(props: &BTreeMap<String, String>) -> anyhow::Result<CommandConfig> {
    let get = |key: &str| props.get(key).map(String::as_str);
    let mut config = CommandConfig::default();
    if let Some(value) = get("security.protocol") {
        let protocol = SecurityProtocol::from_name(value.trim())
            .with_context(|| format!("security.protocol: unknown protocol {value:?}"))?;
        config.protocol = from_file(protocol, "security.protocol");
    }
    if let Some(value) = get("sasl.mechanism") {
        let mechanism = SaslMechanism::from_name(value.trim()).with_context(|| {
            format!(
                "sasl.mechanism {value:?} is not supported (SCRAM-SHA-256, SCRAM-SHA-512, PLAIN)"
            )
        })?;
        config.mechanism = from_file(mechanism, "sasl.mechanism");
    }
    if let Some(value) = get("sasl.jaas.config") {
        let (username, password) = jaas_login(value).context("sasl.jaas.config")?;
        config.username = from_file(username, "sasl.jaas.config");
        config.password = from_file(Password::new(password), "sasl.jaas.config");
    }
    // librdkafka's names; Java's sasl.jaas.config wins when both are given.
    if let Some(value) = get("sasl.username")
        && config.username.is_none()
    {
        config.username = from_file(value.to_string(), "sasl.username");
    }
    if let Some(value) = get("sasl.password")
        && config.password.is_none()
    {
        config.password = from_file(Password::new(value), "sasl.password");
    }
    let pem_store = |kind: &str| {
        let key = format!("ssl.{kind}.type");
        match get(&key) {
            Some(t) if t.trim().eq_ignore_ascii_case("PEM") => Ok(()),
            t => bail!(
                "ssl.{kind}.location: only PEM files are read (ssl.{kind}.type=PEM), not {}; \
                 convert the store to PEM (keytool, openssl) or use --tls-ca/--tls-cert/--tls-key",
                t.unwrap_or("JKS (the default)")
            ),
        }
    };
    if let Some(value) = get("ssl.truststore.location") {
        pem_store("truststore")?;
        config.tls_ca = from_file(PathBuf::from(value), "ssl.truststore.location");
    } else if let Some(value) = get("ssl.ca.location") {
        config.tls_ca = from_file(PathBuf::from(value), "ssl.ca.location");
    }
    if let Some(value) = get("ssl.keystore.location") {
        pem_store("keystore")?;
        // A PEM key store holds the private key and the certificate chain in one file.
        config.tls_cert = from_file(PathBuf::from(value), "ssl.keystore.location");
        config.tls_key = from_file(PathBuf::from(value), "ssl.keystore.location");
    } else {
        if let Some(value) = get("ssl.certificate.location") {
            config.tls_cert = from_file(PathBuf::from(value), "ssl.certificate.location");
        }
        if let Some(value) = get("ssl.key.location") {
            config.tls_key = from_file(PathBuf::from(value), "ssl.key.location");
        }
    }
    if get("ssl.key.password").is_some() {
        bail!(
            "ssl.key.password: encrypted private keys are not supported; decrypt the key (openssl pkey)"
        );
    }
    for key in [
        "ssl.truststore.certificates",
        "ssl.keystore.certificate.chain",
        "ssl.keystore.key",
    ] {
        if get(key).is_some() {
            bail!("{key}: PEM given inline is not supported; put it in a file");
        }
    }
    if get("ssl.endpoint.identification.algorithm").is_some_and(|v| v.trim().is_empty()) {
        bail!(
            "ssl.endpoint.identification.algorithm is empty: the CLI always checks the broker's host name"
        );
    }
    const USED: [&str; 15] = [
        "security.protocol",
        "sasl.mechanism",
        "sasl.jaas.config",
        "sasl.username",
        "sasl.password",
        "ssl.truststore.location",
        "ssl.truststore.type",
        "ssl.ca.location",
        "ssl.keystore.location",
        "ssl.keystore.type",
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.endpoint.identification.algorithm",
        // Passwords of PEM stores protect nothing here (no encrypted keys): harmless.
        "ssl.truststore.password",
        "ssl.keystore.password",
    ];
    config.ignored = props
        .keys()
        .filter(|key| !USED.contains(&key.as_str()))
        .cloned()
        .collect();
    Ok(config)
}

/// The `username` and `password` options of a JAAS entry of Kafka's SCRAM or PLAIN login
/// module: `org.apache.kafka.common.security.scram.ScramLoginModule required
/// username="alice" password="...";`. Errors never quote the text (it holds a password).
fn jaas_login(text: &str) -> anyhow::Result<(String, String)> {
    let text = text.trim();
    let text = text.strip_suffix(';').unwrap_or(text).trim_end();
    let (module, rest) = text
        .split_once(char::is_whitespace)
        .context("expected `<LoginModule class> required username=\"...\" password=\"...\";`")?;
    let module_name = module.rsplit('.').next().unwrap_or(module);
    if !matches!(module_name, "ScramLoginModule" | "PlainLoginModule") {
        // Only a class name is quoted: a malformed entry might start with anything.
        let shown = if module_name.ends_with("LoginModule") {
            module
        } else {
            "the first word"
        };
        bail!("login module {shown} is not supported (ScramLoginModule, PlainLoginModule)");
    }
    let rest = rest.trim_start();
    let (flag, mut rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !matches!(flag, "required" | "requisite" | "sufficient" | "optional") {
        bail!("expected a control flag (required) after the login module");
    }
    let mut options = BTreeMap::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (name, after) = rest
            .split_once('=')
            .context("an option is not name=value")?;
        let name = name.trim();
        let after = after.trim_start();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => {
                quoted_value(quoted).context("an option's quoted value does not end")?
            }
            None => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            }
        };
        options.insert(name.to_string(), value);
        rest = remaining;
    }
    let username = options.remove("username").context("no username option")?;
    let password = options.remove("password").context("no password option")?;
    Ok((username, password))
}

/// A JAAS quoted string after its opening quote: the value (`\"` and `\\` unescaped) and
/// what follows the closing quote.
fn quoted_value(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((idx, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[idx + 1..])),
            '\\' => value.push(chars.next()?.1),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> anyhow::Result<CommandConfig> {
        parse(&properties(text))
    }

    #[test]
    fn properties_are_read_as_java_reads_them() {
        let props = properties(
            "# a comment\n  ! another\n\na=1\nb : 2\nc 3\nd=x=y\ne\\=f=4\nlong=one \\\n    two\n\
             tab=\\tx\\u0041\nempty=\nbare\nb=last\n",
        );
        let want: BTreeMap<String, String> = [
            ("a", "1"),
            ("b", "last"),
            ("c", "3"),
            ("d", "x=y"),
            ("e=f", "4"),
            ("long", "one two"),
            ("tab", "\txA"),
            ("empty", ""),
            ("bare", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(props, want);
    }

    #[test]
    fn java_client_properties_map_to_the_flags() {
        let config = parsed(
            "security.protocol=SASL_SSL\n\
             sasl.mechanism=SCRAM-SHA-256\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n\
             \x20   username=\"alice\" password=\"p\\\\\\\"w; =x\";\n\
             ssl.truststore.type=PEM\n\
             ssl.truststore.location=/etc/kafka/ca.pem\n\
             ssl.keystore.type=pem\n\
             ssl.keystore.location=/etc/kafka/client.pem\n\
             ssl.endpoint.identification.algorithm=https\n\
             client.id=tools\n",
        )
        .unwrap();
        assert_eq!(config.protocol.unwrap().value, SecurityProtocol::SaslSsl);
        assert_eq!(config.mechanism.unwrap().value, SaslMechanism::ScramSha256);
        assert_eq!(config.username.unwrap().value, "alice");
        let password = config.password.unwrap();
        assert_eq!(password.value.expose(), "p\"w; =x");
        assert_eq!(password.key, "sasl.jaas.config");
        assert_eq!(
            config.tls_ca.unwrap().value,
            PathBuf::from("/etc/kafka/ca.pem")
        );
        assert_eq!(
            config.tls_cert.unwrap().value,
            PathBuf::from("/etc/kafka/client.pem")
        );
        assert_eq!(
            config.tls_key.unwrap().value,
            PathBuf::from("/etc/kafka/client.pem")
        );
        assert_eq!(config.ignored, ["client.id"]);
    }

    #[test]
    fn librdkafka_properties_map_to_the_flags() {
        let config = parsed(
            "security.protocol=sasl_plaintext\nsasl.mechanism=PLAIN\nsasl.username=bob\n\
             sasl.password=pw\nssl.ca.location=ca.pem\nssl.certificate.location=c.pem\n\
             ssl.key.location=k.pem\n",
        )
        .unwrap();
        assert_eq!(
            config.protocol.unwrap().value,
            SecurityProtocol::SaslPlaintext
        );
        assert_eq!(config.username.unwrap().key, "sasl.username");
        assert_eq!(config.password.unwrap().value.expose(), "pw");
        assert_eq!(config.tls_ca.unwrap().key, "ssl.ca.location");
        assert_eq!(config.tls_cert.unwrap().value, PathBuf::from("c.pem"));
        assert_eq!(config.tls_key.unwrap().value, PathBuf::from("k.pem"));
        assert_eq!(parsed("").unwrap(), CommandConfig::default());
    }

    #[test]
    fn settings_the_cli_cannot_honour_are_refused() {
        for (text, want) in [
            ("security.protocol=TLS", "unknown protocol"),
            ("sasl.mechanism=GSSAPI", "not supported"),
            ("ssl.truststore.location=ts.jks", "JKS (the default)"),
            (
                "ssl.keystore.type=PKCS12\nssl.keystore.location=k.p12",
                "not PKCS12",
            ),
            ("ssl.key.password=x", "encrypted private keys"),
            ("ssl.truststore.certificates=-----BEGIN", "inline"),
            ("ssl.endpoint.identification.algorithm=", "host name"),
            (
                "sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required;",
                "Krb5LoginModule",
            ),
        ] {
            let message = format!("{:#}", parsed(text).unwrap_err());
            assert!(message.contains(want), "{text}: {message}");
        }
    }

    #[test]
    fn jaas_errors_do_not_quote_the_password() {
        for text in [
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"a\" password=\"s3cret",
            "org.apache.kafka.common.security.plain.PlainLoginModule required password=\"s3cret\";",
            "org.apache.kafka.common.security.plain.PlainLoginModule s3cret;",
            "s3cret",
        ] {
            let message = format!("{:#}", jaas_login(text).unwrap_err());
            assert!(!message.contains("s3cret"), "{message}");
        }
        let (user, password) = jaas_login(
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=bob password=pw;",
        )
        .unwrap();
        assert_eq!((user.as_str(), password.as_str()), ("bob", "pw"));
    }
}

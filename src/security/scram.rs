//! SCRAM (RFC 5802, with SHA-256 and SHA-512 as RFC 7677 and Kafka's KIP-84 use them):
//! salted credentials, the server's two-step exchange and a client for the CLI and tests.
//! Pure functions over bytes: credential lookup is the caller's.
//!
//! **Invariant:** no password or salted password is ever kept: a credential holds the salt,
//! the iteration count, `StoredKey` and `ServerKey` only (what Kafka stores too), which let
//! the server check a proof but not log in as the user.

use std::num::NonZeroU32;

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2, rand};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Iteration counts Kafka accepts (`ScramMechanism.minIterations`; its maximum is 16384).
pub const ITERATIONS_MIN: u32 = 4096;
pub const ITERATIONS_MAX: u32 = 16384;
/// Iterations of credentials made by `strato user create`.
pub const ITERATIONS_DEFAULT: u32 = 8192;
/// Salt bytes of credentials made here (Kafka's own tools use 16 or more... RFC 5802 leaves it open).
pub const SALT_BYTES: usize = 32;
/// Longest client message accepted: user names and nonces are short; anything longer is
/// refused before it is parsed.
pub const MESSAGE_BYTES_MAX: usize = 4096;
/// Random bytes of the server's part of the nonce.
const SERVER_NONCE_BYTES: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's `ScramMechanism` code in DescribeUserScramCredentials and
    /// AlterUserScramCredentials (0 is UNKNOWN).
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2_algorithm(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    /// Bytes of a hash (and of every key) of this mechanism.
    pub fn hash_len(self) -> usize {
        self.digest_algorithm().output_len()
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        let key = hmac::Key::new(self.hmac_algorithm(), key);
        hmac::sign(&key, data).as_ref().to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_algorithm(), data)
            .as_ref()
            .to_vec()
    }

    /// `Hi(password, salt, i)`: the salted password. The password must not be empty.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let iterations = NonZeroU32::new(iterations.max(1)).expect("at least 1");
        let mut out = vec![0u8; self.hash_len()];
        pbkdf2::derive(
            self.pbkdf2_algorithm(),
            iterations,
            salt,
            password,
            &mut out,
        );
        out
    }
}

/// What the server keeps of a user's password, per mechanism.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub mechanism: ScramMechanism,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs and panics, even though they are not the password.
        f.debug_struct("ScramCredential")
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("iterations must be between {ITERATIONS_MIN} and {ITERATIONS_MAX}")]
    Iterations,
    #[error("the salt must not be empty")]
    EmptySalt,
    #[error("the password must not be empty")]
    EmptyPassword,
    #[error("the salted password must be {0} bytes")]
    SaltedPasswordLength(usize),
}

impl ScramCredential {
    /// A credential from what AlterUserScramCredentials carries: the client salts the
    /// password, so it never crosses the wire.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
            return Err(CredentialError::Iterations);
        }
        if salt.is_empty() {
            return Err(CredentialError::EmptySalt);
        }
        if salted_password.len() != mechanism.hash_len() {
            return Err(CredentialError::SaltedPasswordLength(mechanism.hash_len()));
        }
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        Ok(ScramCredential {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
        })
    }

    /// A credential for `password` with a new random salt.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &[u8],
        iterations: u32,
    ) -> Result<Self, CredentialError> {
        if password.is_empty() {
            return Err(CredentialError::EmptyPassword);
        }
        let salt = random_bytes(SALT_BYTES);
        let salted = mechanism.salted_password(password, &salt, iterations);
        Self::from_salted_password(mechanism, &salted, &salt, iterations)
    }

    /// Whether `password` is this credential's password (PLAIN is checked this way, against
    /// the same stored credentials). Costs one key derivation: call it off the async runtime.
    pub fn matches_password(&self, password: &[u8]) -> bool {
        if password.is_empty() {
            return false;
        }
        let salted = self
            .mechanism
            .salted_password(password, &self.salt, self.iterations);
        let client_key = self.mechanism.hmac(&salted, b"Client Key");
        let stored_key = self.mechanism.hash(&client_key);
        constant_time::verify_slices_are_equal(&stored_key, &self.stored_key).is_ok()
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    use rand::SecureRandom;
    let mut out = vec![0u8; n];
    rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the system random source works");
    out
}

/// Why an exchange failed. Every variant is answered with the same
/// SASL_AUTHENTICATION_FAILED to the client; the variant is for the broker's log (it never
/// holds a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("the authorization id differs from the user name")]
    AuthorizationId,
    #[error("delegation tokens are not supported")]
    TokenAuth,
    #[error("the nonce does not continue the client's")]
    Nonce,
    #[error("invalid credentials")]
    InvalidProof,
    #[error("the server's signature does not match")]
    ServerSignature,
    #[error("the server's message is an error: {0}")]
    ServerError(String),
}

/// `saslname` decoding: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed.
fn decode_sasl_name(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(idx) = rest.find('=') {
        out.push_str(&rest[..idx]);
        let escape = rest.get(idx..idx + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[idx + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn encode_sasl_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// A printable nonce (RFC 5802: printable ASCII except `,`).
fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// The client's first message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    pub username: String,
    /// The GS2 header (`n,,` or `n,a=...,`), echoed base64-encoded in the final message.
    gs2_header: String,
    client_nonce: String,
    /// `client-first-message-bare`, part of the signed AuthMessage.
    bare: String,
}

/// Parses `gs2-header client-first-message-bare`. Kafka's extensions (`,key=value` after the
/// nonce) are accepted, but `tokenauth` (delegation tokens) is refused.
pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, ScramError> {
    if message.len() > MESSAGE_BYTES_MAX {
        return Err(ScramError::Malformed("message too long"));
    }
    let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
    let mut parts = text.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    let authzid = parts.next().ok_or(ScramError::Malformed("no GS2 header"))?;
    let bare = parts.next().ok_or(ScramError::Malformed("no GS2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("bad GS2 flag")),
    }
    let authzid = match authzid {
        "" => None,
        a => Some(decode_sasl_name(
            a.strip_prefix("a=")
                .ok_or(ScramError::Malformed("bad authorization id"))?,
        )?),
    };
    let mut fields = bare.split(',');
    let username = fields
        .next()
        .and_then(|f| f.strip_prefix("n="))
        .ok_or(ScramError::Malformed("no user name"))?;
    let username = decode_sasl_name(username)?;
    if username.is_empty() {
        return Err(ScramError::Malformed("empty user name"));
    }
    let client_nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .ok_or(ScramError::Malformed("no nonce"))?;
    if !valid_nonce(client_nonce) {
        return Err(ScramError::Malformed("bad nonce"));
    }
    for extension in fields {
        let (key, _) = extension
            .split_once('=')
            .ok_or(ScramError::Malformed("bad extension"))?;
        if key == "tokenauth" {
            return Err(ScramError::TokenAuth);
        }
    }
    if authzid.as_ref().is_some_and(|a| *a != username) {
        return Err(ScramError::AuthorizationId);
    }
    let gs2_header = text[..text.len() - bare.len()].to_string();
    Ok(ClientFirst {
        username,
        gs2_header,
        client_nonce: client_nonce.to_string(),
        bare: bare.to_string(),
    })
}

/// The server between its first message and the client's final one.
#[derive(Debug)]
pub struct ServerFirst {
    client_first: ClientFirst,
    nonce: String,
    message: String,
    credential: ScramCredential,
}

impl ServerFirst {
    /// Answers `client_first` for `credential`: `r=<client nonce><server nonce>,s=<salt>,i=<n>`.
    pub fn new(client_first: ClientFirst, credential: ScramCredential) -> Self {
        let server_nonce = BASE64.encode(random_bytes(SERVER_NONCE_BYTES));
        let nonce = format!("{}{server_nonce}", client_first.client_nonce);
        let message = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        ServerFirst {
            client_first,
            nonce,
            message,
            credential,
        }
    }

    pub fn message(&self) -> &[u8] {
        self.message.as_bytes()
    }

    pub fn username(&self) -> &str {
        &self.client_first.username
    }

    /// Checks the client's proof; on success returns the server's final message
    /// (`v=<server signature>`).
    pub fn verify_client_final(&self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        if message.len() > MESSAGE_BYTES_MAX {
            return Err(ScramError::Malformed("message too long"));
        }
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut fields = without_proof.split(',');
        let channel_binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(ScramError::Malformed("no channel binding"))?;
        let channel_binding = BASE64
            .decode(channel_binding)
            .map_err(|_| ScramError::Malformed("channel binding is not base64"))?;
        if channel_binding != self.client_first.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBinding);
        }
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(ScramError::Malformed("no nonce"))?;
        // RFC 5802 wants the nonce echoed exactly. librdkafka sends its own nonce followed by
        // the whole server nonce (which already starts with it); Kafka accepts any nonce that
        // ends with the server's, and so do we. The proof covers the text as sent, so this
        // weakens nothing: the server's random part must still be there.
        if !nonce.ends_with(&self.nonce) {
            return Err(ScramError::Nonce);
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let mechanism = self.credential.mechanism;
        if proof.len() != mechanism.hash_len() {
            return Err(ScramError::InvalidProof);
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first.bare, self.message
        );
        let client_signature = mechanism.hmac(&self.credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let stored_key = mechanism.hash(&client_key);
        constant_time::verify_slices_are_equal(&stored_key, &self.credential.stored_key)
            .map_err(|_| ScramError::InvalidProof)?;
        let server_signature = mechanism.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
    }
}

/// A stand-in credential for a user that does not exist, so an unknown user fails at the
/// proof like a wrong password (same messages, same steps) instead of at the first message.
/// Its salt is derived from the name with a key random per process, so asking twice for the
/// same unknown user gets the same salt.
pub fn unknown_user_credential(mechanism: ScramMechanism, username: &str) -> ScramCredential {
    static KEY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| random_bytes(32));
    let mut salt = mechanism.hmac(key, username.as_bytes());
    salt.truncate(SALT_BYTES);
    let random_key = random_bytes(mechanism.hash_len());
    ScramCredential {
        mechanism,
        salt,
        iterations: ITERATIONS_DEFAULT,
        // No proof can hash to a random key.
        stored_key: mechanism.hash(&random_key),
        server_key: random_key,
    }
}

/// The client side (the CLI's connections and tests).
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: Vec<u8>,
    client_nonce: String,
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, username: &str, password: &str) -> Self {
        let client_nonce = BASE64.encode(random_bytes(SERVER_NONCE_BYTES));
        let client_first_bare = format!("n={},r={client_nonce}", encode_sasl_name(username));
        ScramClient {
            mechanism,
            password: password.as_bytes().to_vec(),
            client_nonce,
            client_first_bare,
            server_signature: None,
        }
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Reads `r=...,s=...,i=...` and returns the client's final message.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text =
            std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramError::ServerError(error.to_string()));
        }
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for field in text.split(',') {
            match field.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = BASE64.decode(v).ok(),
                Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        let nonce = nonce.ok_or(ScramError::Malformed("no nonce"))?;
        let salt = salt.ok_or(ScramError::Malformed("no salt"))?;
        let iterations = iterations.ok_or(ScramError::Malformed("no iterations"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError::Nonce);
        }
        if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
            return Err(ScramError::Malformed("iterations out of range"));
        }
        let mechanism = self.mechanism;
        let salted = mechanism.salted_password(&self.password, &salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let stored_key = mechanism.hash(&client_key);
        let without_proof = format!("c={},r={nonce}", BASE64.encode("n,,"));
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let client_signature = mechanism.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = mechanism.hmac(&salted, b"Server Key");
        self.server_signature = Some(mechanism.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks `v=<server signature>`: the server knew the credential.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let text =
            std::str::from_utf8(server_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramError::ServerError(error.to_string()));
        }
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or(ScramError::Malformed("no verifier"))?;
        let expected = self
            .server_signature
            .as_ref()
            .ok_or(ScramError::Malformed("final message before the first"))?;
        constant_time::verify_slices_are_equal(&signature, expected)
            .map_err(|_| ScramError::ServerSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example: user "user", password "pencil".
    #[test]
    fn rfc7677_example_verifies() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = ScramMechanism::Sha256.salted_password(b"pencil", &salt, 4096);
        let credential =
            ScramCredential::from_salted_password(ScramMechanism::Sha256, &salted, &salt, 4096)
                .unwrap();
        let client_first = parse_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(client_first.username, "user");
        // The RFC's server nonce, instead of a random one.
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".to_string();
        let server = ServerFirst {
            message: format!("r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
            nonce,
            client_first,
            credential,
        };
        let server_final = server
            .verify_client_final(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            )
            .unwrap();
        assert_eq!(
            server_final,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
        );
    }

    fn exchange(
        mechanism: ScramMechanism,
        credential: ScramCredential,
        username: &str,
        password: &str,
    ) -> Result<(), ScramError> {
        let mut client = ScramClient::new(mechanism, username, password);
        let first = parse_client_first(&client.client_first())?;
        assert_eq!(first.username, username);
        let server = ServerFirst::new(first, credential);
        let client_final = client.client_final(server.message())?;
        let server_final = server.verify_client_final(&client_final)?;
        client.verify_server_final(&server_final)
    }

    #[test]
    fn client_and_server_agree_on_both_mechanisms() {
        for mechanism in ScramMechanism::ALL {
            let credential =
                ScramCredential::from_password(mechanism, b"s3cret, =x", ITERATIONS_MIN).unwrap();
            assert!(credential.matches_password(b"s3cret, =x"));
            assert!(!credential.matches_password(b"s3cret"));
            assert!(!credential.matches_password(b""));
            exchange(mechanism, credential.clone(), "al=i,ce", "s3cret, =x").unwrap();
            assert_eq!(
                exchange(mechanism, credential, "al=i,ce", "wrong"),
                Err(ScramError::InvalidProof)
            );
            let unknown = unknown_user_credential(mechanism, "nobody");
            assert_eq!(
                unknown.salt,
                unknown_user_credential(mechanism, "nobody").salt,
                "an unknown user looks the same every time"
            );
            assert_eq!(
                exchange(mechanism, unknown, "nobody", "s3cret, =x"),
                Err(ScramError::InvalidProof)
            );
        }
    }

    #[test]
    fn malformed_client_messages_are_refused() {
        for (message, want) in [
            (&b"p=tls-unique,,n=u,r=abc"[..], ScramError::ChannelBinding),
            (b"n,a=bob,n=alice,r=abc", ScramError::AuthorizationId),
            (b"n,,n=alice,r=abc,tokenauth=true", ScramError::TokenAuth),
            (b"n,,n=,r=abc", ScramError::Malformed("empty user name")),
            (
                b"n,,n=a=2Xb,r=abc",
                ScramError::Malformed("bad escape in user name"),
            ),
            (b"n,,n=alice", ScramError::Malformed("no nonce")),
            (b"n,,n=alice,r=", ScramError::Malformed("bad nonce")),
            (b"x,,n=alice,r=abc", ScramError::Malformed("bad GS2 flag")),
            (b"n,,", ScramError::Malformed("no user name")),
            (b"n", ScramError::Malformed("no GS2 header")),
            (b"\xff\xfe", ScramError::Malformed("not UTF-8")),
        ] {
            assert_eq!(
                parse_client_first(message),
                Err(want),
                "{}",
                String::from_utf8_lossy(message)
            );
        }
        assert!(parse_client_first(&vec![b'a'; MESSAGE_BYTES_MAX + 1]).is_err());
        let first = parse_client_first(b"n,a=alice,n=alice,r=abc,ext=1").unwrap();
        assert_eq!(first.gs2_header, "n,a=alice,");
    }

    #[test]
    fn final_messages_must_continue_the_exchange() {
        let mechanism = ScramMechanism::Sha256;
        let credential = ScramCredential::from_password(mechanism, b"pw", ITERATIONS_MIN).unwrap();
        let server = ServerFirst::new(parse_client_first(b"n,,n=u,r=abc").unwrap(), credential);
        for (message, want) in [
            (&b"c=biws,r=abc,p=AAAA"[..], ScramError::Nonce),
            (b"c=eSws,r=abc,p=AAAA", ScramError::ChannelBinding),
            (b"c=biws,r=abc", ScramError::Malformed("no proof")),
            (b"r=abc,p=AAAA", ScramError::Malformed("no channel binding")),
        ] {
            assert_eq!(server.verify_client_final(message), Err(want));
        }
        let wrong_length = format!("c=biws,r={},p=AAAA", server.nonce);
        assert_eq!(
            server.verify_client_final(wrong_length.as_bytes()),
            Err(ScramError::InvalidProof)
        );
    }

    /// librdkafka's client-final nonce is its nonce followed by the server's whole nonce.
    #[test]
    fn librdkafka_nonce_form_is_accepted() {
        let mechanism = ScramMechanism::Sha256;
        let credential = ScramCredential::from_password(mechanism, b"pw", ITERATIONS_MIN).unwrap();
        let mut client = ScramClient::new(mechanism, "u", "pw");
        let server = ServerFirst::new(
            parse_client_first(&client.client_first()).unwrap(),
            credential,
        );
        let standard = client.client_final(server.message()).unwrap();
        // Rebuild the final message the way librdkafka does and sign that text.
        let doubled_nonce = format!("{}{}", client.client_nonce, server.nonce);
        let salted = mechanism.salted_password(b"pw", &server.credential.salt, ITERATIONS_MIN);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let without_proof = format!("c=biws,r={doubled_nonce}");
        let auth_message = format!(
            "{},{},{without_proof}",
            client.client_first_bare, server.message
        );
        let signature = mechanism.hmac(&mechanism.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let librdkafka_final = format!("{without_proof},p={}", BASE64.encode(proof));
        server
            .verify_client_final(librdkafka_final.as_bytes())
            .unwrap();
        server.verify_client_final(&standard).unwrap();
    }

    #[test]
    fn credentials_are_checked() {
        let m = ScramMechanism::Sha512;
        let salted = vec![0u8; m.hash_len()];
        assert_eq!(
            ScramCredential::from_salted_password(m, &salted, b"salt", 4095),
            Err(CredentialError::Iterations)
        );
        assert_eq!(
            ScramCredential::from_salted_password(m, &salted, b"", 4096),
            Err(CredentialError::EmptySalt)
        );
        assert_eq!(
            ScramCredential::from_salted_password(m, &salted[1..], b"salt", 4096),
            Err(CredentialError::SaltedPasswordLength(64))
        );
        assert_eq!(
            ScramCredential::from_password(m, b"", 4096),
            Err(CredentialError::EmptyPassword)
        );
        let credential = ScramCredential::from_password(m, b"pw", 4096).unwrap();
        assert!(!format!("{credential:?}").contains("key"));
        assert_eq!(ScramMechanism::from_code(2), Some(m));
        assert_eq!(ScramMechanism::from_code(0), None);
        assert_eq!(ScramMechanism::from_name("SCRAM-SHA-512"), Some(m));
    }
}

//! Kafka principals (`KafkaPrincipal`): `type:name`, e.g. `User:alice`. A connection's
//! principal comes from SASL, from its TLS client certificate, or is `User:ANONYMOUS`.

use std::fmt;

/// The principal type Kafka gives every authenticated identity.
pub const USER_TYPE: &str = "User";
/// The name of the principal of a connection that did not authenticate (Kafka's
/// `KafkaPrincipal.ANONYMOUS`).
pub const ANONYMOUS_NAME: &str = "ANONYMOUS";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    pub principal_type: String,
    pub name: String,
}

impl Principal {
    pub fn user(name: impl Into<String>) -> Self {
        Principal {
            principal_type: USER_TYPE.to_string(),
            name: name.into(),
        }
    }

    pub fn anonymous() -> Self {
        Self::user(ANONYMOUS_NAME)
    }

    /// Parses `type:name` (the type may not be empty; the name may contain `:`).
    pub fn parse(text: &str) -> Option<Self> {
        let (principal_type, name) = text.split_once(':')?;
        if principal_type.is_empty() || name.is_empty() {
            return None;
        }
        Some(Principal {
            principal_type: principal_type.to_string(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_round_trip_through_text() {
        let alice = Principal::parse("User:alice").unwrap();
        assert_eq!(alice, Principal::user("alice"));
        assert_eq!(alice.to_string(), "User:alice");
        assert_eq!(
            Principal::parse("User:CN=a,O=b:c").unwrap().name,
            "CN=a,O=b:c"
        );
        assert_eq!(Principal::anonymous().to_string(), "User:ANONYMOUS");
        for bad in ["alice", ":alice", "User:", ""] {
            assert_eq!(Principal::parse(bad), None, "{bad}");
        }
    }
}

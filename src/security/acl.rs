//! Kafka's ACL model, pure: resource types, pattern types, operations and permission types
//! with their wire codes, ACL bindings and the filters of DescribeAcls/DeleteAcls, and the
//! authorization decision of Kafka's `StandardAuthorizer` over an [`AclIndex`].
//!
//! Decision, for a principal at a host asking for an operation on a resource: a matching
//! DENY binding wins; otherwise a matching ALLOW binding for the operation or one that implies
//! it allows; otherwise the answer is no (no ACL found = denied). A binding matches when its
//! principal is the requester's or `User:*`, its host the requester's address or `*`, and its
//! resource pattern the literal name, the literal `*`, or a prefix of the name (PREFIXED).
//! Super users are the authorizer's business (`authorizer.rs`), not this module's.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use strato_metadata::model::{AclRecord, RECORD_FORMAT_V1};

use super::principal::Principal;

/// The name of the one CLUSTER resource (Kafka `Resource.CLUSTER_NAME`).
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";
/// A LITERAL resource name that matches every name (Kafka `ResourcePattern.WILDCARD_RESOURCE`).
pub const WILDCARD_RESOURCE: &str = "*";
/// The principal of a binding that applies to every user (Kafka `Acl.WildcardPrincipalString`).
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The host of a binding that applies to every client address.
pub const WILDCARD_HOST: &str = "*";

/// Defines a Kafka enum with its wire codes and `Errors.java`-style names. Unknown codes
/// decode as `Unknown`, as Kafka's `fromCode` does.
macro_rules! kafka_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            pub fn from_code(code: i8) -> Self {
                match code {
                    $($code => $name::$variant,)*
                    _ => $name::Unknown,
                }
            }

            /// Kafka's name: `TRANSACTIONAL_ID`, `DESCRIBE_CONFIGS`.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// Parses a name case-insensitively, with or without underscores or dashes
            /// (`DescribeConfigs`, `describe-configs`, `DESCRIBE_CONFIGS`), as kafka-acls.sh
            /// accepts them.
            pub fn parse(text: &str) -> Option<Self> {
                let wanted = normalize(text);
                Self::ALL.iter().copied().find(|v| normalize(v.name()) == wanted)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

fn normalize(text: &str) -> String {
    text.chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

kafka_enum!(
    /// Kafka `ResourceType`.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

kafka_enum!(
    /// Kafka `PatternType`.
    PatternType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// Kafka `AclOperation`.
    AclOperation {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

kafka_enum!(
    /// Kafka `AclPermissionType`.
    PermissionType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

impl ResourceType {
    /// The operations that mean something on a resource of this type, in code order (Kafka
    /// `AclEntry.supportedOperations`): what authorized-operations bitfields are made of.
    pub fn supported_operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Delete,
                Alter,
                Describe,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Delete, Describe],
            ResourceType::Cluster => &[
                Create,
                Alter,
                Describe,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
            ],
            ResourceType::TransactionalId => &[Write, Describe],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Unknown | ResourceType::Any => &[],
        }
    }

    /// The resource types a binding can name.
    pub fn is_concrete(self) -> bool {
        !matches!(self, ResourceType::Unknown | ResourceType::Any)
    }
}

impl AclOperation {
    /// Whether an ALLOW binding for `self` also allows `wanted` (Kafka's `StandardAuthorizer`):
    /// ALL implies everything, READ, WRITE, DELETE and ALTER imply DESCRIBE, ALTER_CONFIGS
    /// implies DESCRIBE_CONFIGS.
    pub fn implies(self, wanted: AclOperation) -> bool {
        use AclOperation::*;
        self == All
            || self == wanted
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }
}

/// What a binding applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

/// Who may (or may not) do what, from where.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessControlEntry {
    /// `Type:name`, e.g. `User:alice`, or [`WILDCARD_PRINCIPAL`].
    pub principal: String,
    /// An IP address or [`WILDCARD_HOST`].
    pub host: String,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

/// One ACL (Kafka `AclBinding`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub entry: AccessControlEntry,
}

impl AclBinding {
    /// The binding as the metadata store keeps it (`acls/`, see `acl_store`).
    pub fn to_record(&self) -> AclRecord {
        AclRecord {
            v: RECORD_FORMAT_V1,
            resource_type: self.pattern.resource_type.code(),
            resource_name: self.pattern.name.clone(),
            pattern_type: self.pattern.pattern_type.code(),
            principal: self.entry.principal.clone(),
            host: self.entry.host.clone(),
            operation: self.entry.operation.code(),
            permission_type: self.entry.permission.code(),
        }
    }

    /// A binding read back from the metadata store.
    pub fn from_record(record: &AclRecord) -> Self {
        AclBinding {
            pattern: ResourcePattern {
                resource_type: ResourceType::from_code(record.resource_type),
                name: record.resource_name.clone(),
                pattern_type: PatternType::from_code(record.pattern_type),
            },
            entry: AccessControlEntry {
                principal: record.principal.clone(),
                host: record.host.clone(),
                operation: AclOperation::from_code(record.operation),
                permission: PermissionType::from_code(record.permission_type),
            },
        }
    }
}

/// Why a binding cannot be created, or a filter cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAcl {
    #[error("resource type {0} cannot be in an ACL")]
    ResourceType(ResourceType),
    #[error("pattern type {0} cannot be in an ACL: LITERAL or PREFIXED")]
    PatternType(PatternType),
    #[error("operation {0} cannot be in an ACL")]
    Operation(AclOperation),
    #[error("permission type {0} cannot be in an ACL: ALLOW or DENY")]
    Permission(PermissionType),
    #[error("the resource name is empty")]
    EmptyName,
    #[error("the only valid name for the CLUSTER resource is {CLUSTER_RESOURCE_NAME}")]
    ClusterName,
    #[error("principal {0:?} is not Type:name")]
    Principal(String),
    #[error("host {0:?} is neither * nor an IP address")]
    Host(String),
    #[error("the filter contains UNKNOWN elements")]
    UnknownInFilter,
}

impl AclBinding {
    /// The checks of a binding to create (Kafka's `AclControlManager.validateNewAcl` and
    /// the CLUSTER name rule of `KafkaApis`), plus a host that is `*` or an IP address.
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        let ResourcePattern {
            resource_type,
            name,
            pattern_type,
        } = &self.pattern;
        if !resource_type.is_concrete() {
            return Err(InvalidAcl::ResourceType(*resource_type));
        }
        if !matches!(pattern_type, PatternType::Literal | PatternType::Prefixed) {
            return Err(InvalidAcl::PatternType(*pattern_type));
        }
        if matches!(
            self.entry.operation,
            AclOperation::Unknown | AclOperation::Any
        ) {
            return Err(InvalidAcl::Operation(self.entry.operation));
        }
        if !matches!(
            self.entry.permission,
            PermissionType::Allow | PermissionType::Deny
        ) {
            return Err(InvalidAcl::Permission(self.entry.permission));
        }
        if name.is_empty() {
            return Err(InvalidAcl::EmptyName);
        }
        if *resource_type == ResourceType::Cluster && name != CLUSTER_RESOURCE_NAME {
            return Err(InvalidAcl::ClusterName);
        }
        if Principal::parse(&self.entry.principal).is_none() {
            return Err(InvalidAcl::Principal(self.entry.principal.clone()));
        }
        let host = &self.entry.host;
        if host != WILDCARD_HOST && host.parse::<IpAddr>().is_err() {
            return Err(InvalidAcl::Host(host.clone()));
        }
        Ok(())
    }
}

/// A DescribeAcls or DeleteAcls filter (Kafka `AclBindingFilter`): ANY matches any value,
/// `None` matches any name, principal or host; pattern type MATCH matches every binding that
/// applies to the named resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    pub resource_type: ResourceType,
    pub name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

impl AclBindingFilter {
    /// Matches every binding.
    pub fn any() -> Self {
        AclBindingFilter {
            resource_type: ResourceType::Any,
            name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: PermissionType::Any,
        }
    }

    /// A filter with an UNKNOWN element matches nothing and is refused (Kafka
    /// `AclBindingFilter.findIndefiniteField`).
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        if self.resource_type == ResourceType::Unknown
            || self.pattern_type == PatternType::Unknown
            || self.operation == AclOperation::Unknown
            || self.permission == PermissionType::Unknown
        {
            return Err(InvalidAcl::UnknownInFilter);
        }
        Ok(())
    }

    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_pattern(&binding.pattern) && self.matches_entry(&binding.entry)
    }

    /// Kafka `ResourcePatternFilter.matches`.
    fn matches_pattern(&self, pattern: &ResourcePattern) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != pattern.resource_type {
            return false;
        }
        if !matches!(self.pattern_type, PatternType::Any | PatternType::Match)
            && self.pattern_type != pattern.pattern_type
        {
            return false;
        }
        let Some(name) = &self.name else {
            return true;
        };
        if self.pattern_type == PatternType::Any || self.pattern_type == pattern.pattern_type {
            return *name == pattern.name;
        }
        // MATCH: every binding that applies to the resource `name`.
        match pattern.pattern_type {
            PatternType::Literal => *name == pattern.name || pattern.name == WILDCARD_RESOURCE,
            PatternType::Prefixed => name.starts_with(&pattern.name),
            _ => false,
        }
    }

    /// Kafka `AccessControlEntryFilter.matches`.
    fn matches_entry(&self, entry: &AccessControlEntry) -> bool {
        self.principal
            .as_ref()
            .is_none_or(|p| *p == entry.principal)
            && self.host.as_ref().is_none_or(|h| *h == entry.host)
            && (self.operation == AclOperation::Any || self.operation == entry.operation)
            && (self.permission == PermissionType::Any || self.permission == entry.permission)
    }
}

/// Who asks: the principal and the client's address.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a Principal,
    pub host: IpAddr,
}

impl Requester<'_> {
    fn matches(&self, entry: &AccessControlEntry) -> bool {
        let principal = entry.principal == WILDCARD_PRINCIPAL
            || entry.principal.split_once(':')
                == Some((&self.principal.principal_type, &self.principal.name));
        // Hosts are compared as addresses, so `::1` and `0:0:0:0:0:0:0:1` are one host.
        let host = entry.host == WILDCARD_HOST || entry.host.parse::<IpAddr>() == Ok(self.host);
        principal && host
    }
}

/// The entries of each resource pattern, by (resource type, pattern type) and name, each with
/// the number of keys that hold it (records at other keys than their own would share one).
type EntriesByName = BTreeMap<String, BTreeMap<AccessControlEntry, usize>>;

/// The bindings a broker holds, by their metadata-store key, indexed by resource for
/// authorization.
#[derive(Debug, Default)]
pub struct AclIndex {
    by_key: HashMap<String, AclBinding>,
    by_pattern: HashMap<(ResourceType, PatternType), EntriesByName>,
}

impl AclIndex {
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    /// Adds (or replaces) the binding stored at `key`.
    pub fn insert(&mut self, key: String, binding: AclBinding) {
        if let Some(old) = self.by_key.insert(key, binding.clone()) {
            self.unindex(&old);
        }
        self.by_pattern
            .entry((binding.pattern.resource_type, binding.pattern.pattern_type))
            .or_default()
            .entry(binding.pattern.name)
            .or_default()
            .entry(binding.entry)
            .and_modify(|holders| *holders += 1)
            .or_insert(1);
    }

    /// Drops the binding stored at `key`, if any.
    pub fn remove(&mut self, key: &str) -> Option<AclBinding> {
        let old = self.by_key.remove(key)?;
        self.unindex(&old);
        Some(old)
    }

    fn unindex(&mut self, binding: &AclBinding) {
        let pattern = &binding.pattern;
        let Some(names) = self
            .by_pattern
            .get_mut(&(pattern.resource_type, pattern.pattern_type))
        else {
            return;
        };
        if let Some(entries) = names.get_mut(&pattern.name) {
            if let Some(holders) = entries.get_mut(&binding.entry) {
                *holders -= 1;
                if *holders == 0 {
                    entries.remove(&binding.entry);
                }
            }
            if entries.is_empty() {
                names.remove(&pattern.name);
            }
        }
    }

    /// The bindings `filter` matches, in a stable order.
    pub fn matching(&self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        let mut found: Vec<AclBinding> = self
            .by_key
            .values()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect();
        found.sort();
        found
    }

    /// The entries of every pattern that applies to the resource: the literal name, the
    /// literal `*`, and the prefixes of the name.
    fn applicable<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AccessControlEntry> + 'a {
        let literal = self.by_pattern.get(&(resource_type, PatternType::Literal));
        let literal_entries = literal
            .into_iter()
            .flat_map(move |names| {
                let wildcard = (name != WILDCARD_RESOURCE)
                    .then(|| names.get(WILDCARD_RESOURCE))
                    .flatten();
                names.get(name).into_iter().chain(wildcard)
            })
            .flat_map(BTreeMap::keys);
        let prefixed = self.by_pattern.get(&(resource_type, PatternType::Prefixed));
        let prefixed_entries = prefixed
            .into_iter()
            .flat_map(move |names| prefixes_of(names, name))
            .flat_map(BTreeMap::keys);
        literal_entries.chain(prefixed_entries)
    }

    /// Kafka `StandardAuthorizerData.authorize` (super users aside): a matching DENY wins,
    /// then a matching ALLOW of an implying operation allows; nothing matching denies.
    pub fn authorize(
        &self,
        requester: Requester<'_>,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let mut allowed = false;
        for entry in self.applicable(resource_type, name) {
            if !requester.matches(entry) {
                continue;
            }
            match entry.permission {
                PermissionType::Deny
                    if entry.operation == AclOperation::All || entry.operation == operation =>
                {
                    return false;
                }
                PermissionType::Allow if entry.operation.implies(operation) => allowed = true,
                _ => {}
            }
        }
        allowed
    }

    /// Kafka `Authorizer.authorizeByResourceType` (KIP-679): whether some resource of the type
    /// could be accessed with `operation` — an ALLOW binding (of the operation or ALL) on a
    /// name or prefix that no DENY literal or shorter DENY prefix takes away; a DENY on the
    /// literal `*` denies everything.
    pub fn authorize_any(
        &self,
        requester: Requester<'_>,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        let applies = |entry: &AccessControlEntry, permission: PermissionType| {
            entry.permission == permission
                && (entry.operation == operation || entry.operation == AclOperation::All)
                && requester.matches(entry)
        };
        let with = |pattern_type: PatternType, permission: PermissionType| -> Vec<&str> {
            self.by_pattern
                .get(&(resource_type, pattern_type))
                .into_iter()
                .flatten()
                .filter(|(_, entries)| entries.keys().any(|e| applies(e, permission)))
                .map(|(name, _)| name.as_str())
                .collect()
        };
        let deny_literal = with(PatternType::Literal, PermissionType::Deny);
        if deny_literal.contains(&WILDCARD_RESOURCE) {
            return false;
        }
        let deny_prefixed = with(PatternType::Prefixed, PermissionType::Deny);
        let denied_by_prefix = |name: &str| deny_prefixed.iter().any(|p| name.starts_with(p));
        let allow_literal = with(PatternType::Literal, PermissionType::Allow);
        if allow_literal.contains(&WILDCARD_RESOURCE) {
            return true;
        }
        allow_literal
            .iter()
            .any(|name| !deny_literal.contains(name) && !denied_by_prefix(name))
            || with(PatternType::Prefixed, PermissionType::Allow)
                .iter()
                .any(|prefix| !denied_by_prefix(prefix))
    }

    /// Kafka's authorized-operations bitfield of a resource: bit n set when the operation
    /// of code n is allowed, over the operations the resource type supports.
    pub fn authorized_operations(
        &self,
        requester: Requester<'_>,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        operations_bitfield(
            resource_type
                .supported_operations()
                .iter()
                .copied()
                .filter(|op| self.authorize(requester, *op, resource_type, name)),
        )
    }
}

/// Kafka `Utils.to32BitField`: bit n for operation code n.
pub fn operations_bitfield(operations: impl IntoIterator<Item = AclOperation>) -> i32 {
    operations
        .into_iter()
        .fold(0i32, |bits, op| bits | (1i32 << op.code()))
}

/// The entries of the PREFIXED patterns that are prefixes of `name`: by looking up every
/// prefix of the name, or by scanning the patterns when there are fewer of them.
fn prefixes_of<'a>(
    names: &'a EntriesByName,
    name: &'a str,
) -> Box<dyn Iterator<Item = &'a BTreeMap<AccessControlEntry, usize>> + 'a> {
    if names.len() < name.len() {
        Box::new(
            names
                .iter()
                .filter(move |(prefix, _)| name.starts_with(prefix.as_str()))
                .map(|(_, entries)| entries),
        )
    } else {
        Box::new(
            name.char_indices()
                .map(|(idx, c)| idx + c.len_utf8())
                .filter_map(move |end| names.get(&name[..end])),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        operation: AclOperation,
        permission: PermissionType,
    ) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type,
                name: name.to_string(),
                pattern_type,
            },
            entry: AccessControlEntry {
                principal: principal.to_string(),
                host: WILDCARD_HOST.to_string(),
                operation,
                permission,
            },
        }
    }

    #[test]
    fn records_round_trip_and_key_every_part() {
        let original = AclBinding {
            pattern: ResourcePattern {
                resource_type: ResourceType::Group,
                name: "team/a".into(),
                pattern_type: PatternType::Prefixed,
            },
            entry: AccessControlEntry {
                principal: "User:alice".into(),
                host: WILDCARD_HOST.into(),
                operation: AclOperation::Read,
                permission: PermissionType::Deny,
            },
        };
        let stored = original.to_record();
        let decoded = AclRecord::decode("k", &stored.encode()).unwrap();
        assert_eq!(AclBinding::from_record(&decoded), original);
        assert_eq!(stored.key(), "acls/3/4/team%2Fa/User%3Aalice/%2A/3/2");
    }

    fn topic_allow(name: &str, pattern_type: PatternType, op: AclOperation) -> AclBinding {
        binding(
            ResourceType::Topic,
            name,
            pattern_type,
            "User:alice",
            op,
            PermissionType::Allow,
        )
    }

    fn index(bindings: &[AclBinding]) -> AclIndex {
        let mut index = AclIndex::default();
        for (idx, b) in bindings.iter().enumerate() {
            index.insert(format!("k{idx}"), b.clone());
        }
        index
    }

    const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn alice_can(index: &AclIndex, op: AclOperation, rt: ResourceType, name: &str) -> bool {
        let alice = Principal::user("alice");
        let requester = Requester {
            principal: &alice,
            host: LOCALHOST,
        };
        index.authorize(requester, op, rt, name)
    }

    #[test]
    fn codes_and_names_round_trip() {
        for rt in ResourceType::ALL {
            assert_eq!(ResourceType::from_code(rt.code()), *rt);
            assert_eq!(ResourceType::parse(rt.name()), Some(*rt));
        }
        for op in AclOperation::ALL {
            assert_eq!(AclOperation::from_code(op.code()), *op);
        }
        assert_eq!(AclOperation::TwoPhaseCommit.code(), 15);
        assert_eq!(ResourceType::User.code(), 7);
        assert_eq!(PatternType::Prefixed.code(), 4);
        assert_eq!(PermissionType::Allow.code(), 3);
        assert_eq!(AclOperation::from_code(99), AclOperation::Unknown);
        assert_eq!(
            AclOperation::parse("ClusterAction"),
            Some(AclOperation::ClusterAction)
        );
        assert_eq!(
            AclOperation::parse("describe-configs"),
            Some(AclOperation::DescribeConfigs)
        );
        assert_eq!(
            AclOperation::parse("IDEMPOTENT_WRITE"),
            Some(AclOperation::IdempotentWrite)
        );
        assert_eq!(
            ResourceType::parse("TransactionalId"),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(AclOperation::parse("fly"), None);
    }

    #[test]
    fn no_acl_means_denied() {
        let index = AclIndex::default();
        assert!(!alice_can(
            &index,
            AclOperation::Read,
            ResourceType::Topic,
            "t"
        ));
    }

    #[test]
    fn operations_imply_describe_and_describe_configs() {
        use AclOperation::*;
        for op in [Read, Write, Delete, Alter] {
            let index = index(&[topic_allow("t", PatternType::Literal, op)]);
            assert!(alice_can(&index, op, ResourceType::Topic, "t"));
            assert!(
                alice_can(&index, Describe, ResourceType::Topic, "t"),
                "{op}"
            );
            assert!(!alice_can(&index, Create, ResourceType::Topic, "t"), "{op}");
        }
        let index = index(&[topic_allow("t", PatternType::Literal, Read)]);
        assert!(!alice_can(&index, Write, ResourceType::Topic, "t"));
        let index = self::index(&[topic_allow("t", PatternType::Literal, AlterConfigs)]);
        assert!(alice_can(&index, DescribeConfigs, ResourceType::Topic, "t"));
        assert!(!alice_can(&index, Describe, ResourceType::Topic, "t"));
        let index = self::index(&[topic_allow("t", PatternType::Literal, Describe)]);
        assert!(!alice_can(&index, Read, ResourceType::Topic, "t"));
        let index = self::index(&[topic_allow("t", PatternType::Literal, All)]);
        for op in ResourceType::Topic.supported_operations() {
            assert!(alice_can(&index, *op, ResourceType::Topic, "t"), "{op}");
        }
    }

    #[test]
    fn deny_wins_over_allow() {
        use AclOperation::*;
        let deny = |name: &str, pattern_type: PatternType, op: AclOperation| {
            binding(
                ResourceType::Topic,
                name,
                pattern_type,
                "User:alice",
                op,
                PermissionType::Deny,
            )
        };
        let allow_all = topic_allow("*", PatternType::Literal, All);
        let index = index(&[allow_all.clone(), deny("t", PatternType::Literal, Write)]);
        assert!(!alice_can(&index, Write, ResourceType::Topic, "t"));
        assert!(alice_can(&index, Read, ResourceType::Topic, "t"));
        assert!(alice_can(&index, Write, ResourceType::Topic, "u"));
        // A DENY of ALL denies every operation; a DENY of READ does not deny DESCRIBE.
        let index = self::index(&[allow_all.clone(), deny("t", PatternType::Literal, All)]);
        assert!(!alice_can(&index, Describe, ResourceType::Topic, "t"));
        let index = self::index(&[allow_all.clone(), deny("t", PatternType::Literal, Read)]);
        assert!(alice_can(&index, Describe, ResourceType::Topic, "t"));
        // A prefixed DENY covers its family, a wildcard principal DENY covers alice.
        let index = self::index(&[
            allow_all.clone(),
            deny("secret-", PatternType::Prefixed, Read),
        ]);
        assert!(!alice_can(&index, Read, ResourceType::Topic, "secret-1"));
        assert!(alice_can(&index, Read, ResourceType::Topic, "public"));
        let everyone = binding(
            ResourceType::Topic,
            "t",
            PatternType::Literal,
            WILDCARD_PRINCIPAL,
            Read,
            PermissionType::Deny,
        );
        let index = self::index(&[allow_all, everyone]);
        assert!(!alice_can(&index, Read, ResourceType::Topic, "t"));
    }

    #[test]
    fn prefixed_and_wildcard_patterns_match_families() {
        use AclOperation::*;
        let index = index(&[
            topic_allow("orders-", PatternType::Prefixed, Write),
            binding(
                ResourceType::Group,
                "*",
                PatternType::Literal,
                WILDCARD_PRINCIPAL,
                Read,
                PermissionType::Allow,
            ),
        ]);
        for topic in ["orders-", "orders-eu", "orders-ü"] {
            assert!(
                alice_can(&index, Write, ResourceType::Topic, topic),
                "{topic}"
            );
        }
        for topic in ["orders", "order-eu", "x-orders-eu"] {
            assert!(
                !alice_can(&index, Write, ResourceType::Topic, topic),
                "{topic}"
            );
        }
        // A literal `*` binding matches every name of its resource type, not other types.
        assert!(alice_can(&index, Read, ResourceType::Group, "any-group"));
        assert!(!alice_can(&index, Read, ResourceType::Topic, "any-group"));
        // A PREFIXED `*` is a prefix, not a wildcard.
        let index = self::index(&[topic_allow("*", PatternType::Prefixed, Read)]);
        assert!(!alice_can(&index, Read, ResourceType::Topic, "t"));
        assert!(alice_can(&index, Read, ResourceType::Topic, "*t"));
        // Many prefixes, a short name: both lookup strategies agree.
        let many: Vec<AclBinding> = (0..50)
            .map(|i| topic_allow(&format!("p{i}-"), PatternType::Prefixed, Read))
            .collect();
        let index = self::index(&many);
        assert!(alice_can(&index, Read, ResourceType::Topic, "p7-x"));
        assert!(!alice_can(&index, Read, ResourceType::Topic, "p"));
    }

    #[test]
    fn principals_and_hosts_must_match() {
        let mut bob_only = topic_allow("t", PatternType::Literal, AclOperation::Read);
        bob_only.entry.principal = "User:bob".into();
        let mut other_host = topic_allow("t", PatternType::Literal, AclOperation::Write);
        other_host.entry.host = "10.0.0.1".into();
        let mut this_host = topic_allow("t", PatternType::Literal, AclOperation::Alter);
        this_host.entry.host = "127.0.0.1".into();
        let mut group_alice = topic_allow("t", PatternType::Literal, AclOperation::Delete);
        group_alice.entry.principal = "Group:alice".into();
        let index = index(&[bob_only, other_host, this_host, group_alice]);
        assert!(!alice_can(
            &index,
            AclOperation::Read,
            ResourceType::Topic,
            "t"
        ));
        assert!(!alice_can(
            &index,
            AclOperation::Write,
            ResourceType::Topic,
            "t"
        ));
        assert!(alice_can(
            &index,
            AclOperation::Alter,
            ResourceType::Topic,
            "t"
        ));
        assert!(!alice_can(
            &index,
            AclOperation::Delete,
            ResourceType::Topic,
            "t"
        ));
    }

    #[test]
    fn removal_takes_a_binding_out() {
        let read = topic_allow("t", PatternType::Literal, AclOperation::Read);
        let mut index = index(std::slice::from_ref(&read));
        // The same binding at a second key stays until both keys are gone.
        index.insert("other".into(), read);
        assert!(index.remove("other").is_some());
        assert!(alice_can(
            &index,
            AclOperation::Read,
            ResourceType::Topic,
            "t"
        ));
        assert!(index.remove("k0").is_some());
        assert!(index.remove("k0").is_none());
        assert!(index.is_empty());
        assert!(!alice_can(
            &index,
            AclOperation::Read,
            ResourceType::Topic,
            "t"
        ));
    }

    #[test]
    fn filters_follow_kafka_semantics() {
        let literal = topic_allow("orders", PatternType::Literal, AclOperation::Read);
        let wildcard = topic_allow("*", PatternType::Literal, AclOperation::Write);
        let prefixed = topic_allow("ord", PatternType::Prefixed, AclOperation::Read);
        let other = topic_allow("payments", PatternType::Literal, AclOperation::Read);
        let all = [
            literal.clone(),
            wildcard.clone(),
            prefixed.clone(),
            other.clone(),
        ];
        let index = index(&all);
        let named = |pattern_type: PatternType| AclBindingFilter {
            resource_type: ResourceType::Topic,
            name: Some("orders".into()),
            pattern_type,
            ..AclBindingFilter::any()
        };
        let mut expected = vec![literal.clone(), wildcard.clone(), prefixed.clone()];
        expected.sort();
        assert_eq!(index.matching(&named(PatternType::Match)), expected);
        assert_eq!(
            index.matching(&named(PatternType::Any)),
            vec![literal.clone()]
        );
        assert_eq!(
            index.matching(&named(PatternType::Literal)),
            vec![literal.clone()]
        );
        assert!(index.matching(&named(PatternType::Prefixed)).is_empty());
        assert_eq!(index.matching(&AclBindingFilter::any()).len(), all.len());
        let writes = AclBindingFilter {
            operation: AclOperation::Write,
            ..AclBindingFilter::any()
        };
        assert_eq!(index.matching(&writes), vec![wildcard]);
        let bob = AclBindingFilter {
            principal: Some("User:bob".into()),
            ..AclBindingFilter::any()
        };
        assert!(index.matching(&bob).is_empty());
        let groups = AclBindingFilter {
            resource_type: ResourceType::Group,
            ..AclBindingFilter::any()
        };
        assert!(index.matching(&groups).is_empty());
        let unknown = AclBindingFilter {
            operation: AclOperation::Unknown,
            ..AclBindingFilter::any()
        };
        assert_eq!(unknown.validate(), Err(InvalidAcl::UnknownInFilter));
        assert_eq!(AclBindingFilter::any().validate(), Ok(()));
    }

    #[test]
    fn creations_are_validated() {
        let good = topic_allow("t", PatternType::Literal, AclOperation::Read);
        assert_eq!(good.validate(), Ok(()));
        let mut cluster = binding(
            ResourceType::Cluster,
            CLUSTER_RESOURCE_NAME,
            PatternType::Literal,
            "User:ops",
            AclOperation::Alter,
            PermissionType::Allow,
        );
        assert_eq!(cluster.validate(), Ok(()));
        cluster.pattern.name = "my-cluster".into();
        assert_eq!(cluster.validate(), Err(InvalidAcl::ClusterName));
        let with = |change: &dyn Fn(&mut AclBinding)| {
            let mut b = good.clone();
            change(&mut b);
            b.validate()
        };
        assert_eq!(
            with(&|b| b.pattern.pattern_type = PatternType::Match),
            Err(InvalidAcl::PatternType(PatternType::Match))
        );
        assert_eq!(
            with(&|b| b.pattern.pattern_type = PatternType::Any),
            Err(InvalidAcl::PatternType(PatternType::Any))
        );
        assert_eq!(
            with(&|b| b.pattern.resource_type = ResourceType::Any),
            Err(InvalidAcl::ResourceType(ResourceType::Any))
        );
        assert_eq!(
            with(&|b| b.entry.operation = AclOperation::Any),
            Err(InvalidAcl::Operation(AclOperation::Any))
        );
        assert_eq!(
            with(&|b| b.entry.permission = PermissionType::Unknown),
            Err(InvalidAcl::Permission(PermissionType::Unknown))
        );
        assert_eq!(
            with(&|b| b.pattern.name.clear()),
            Err(InvalidAcl::EmptyName)
        );
        assert_eq!(
            with(&|b| b.entry.principal = "alice".into()),
            Err(InvalidAcl::Principal("alice".into()))
        );
        assert_eq!(
            with(&|b| b.entry.host = "example.com".into()),
            Err(InvalidAcl::Host("example.com".into()))
        );
        assert_eq!(with(&|b| b.entry.host = "::1".into()), Ok(()));
        assert_eq!(
            with(&|b| b.entry.principal = WILDCARD_PRINCIPAL.into()),
            Ok(())
        );
    }

    #[test]
    fn any_resource_authorization_follows_kip_679() {
        use AclOperation::*;
        let alice = Principal::user("alice");
        let requester = Requester {
            principal: &alice,
            host: LOCALHOST,
        };
        let deny = |name: &str, pattern_type: PatternType| {
            binding(
                ResourceType::Topic,
                name,
                pattern_type,
                "User:alice",
                Write,
                PermissionType::Deny,
            )
        };
        let can = |bindings: &[AclBinding]| {
            index(bindings).authorize_any(requester, Write, ResourceType::Topic)
        };
        assert!(!can(&[]));
        assert!(can(&[topic_allow("t", PatternType::Literal, Write)]));
        assert!(can(&[topic_allow("t", PatternType::Literal, All)]));
        // READ does not count for WRITE, and a literal DENY takes its name away.
        assert!(!can(&[topic_allow("t", PatternType::Literal, Read)]));
        assert!(!can(&[
            topic_allow("t", PatternType::Literal, Write),
            deny("t", PatternType::Literal)
        ]));
        // A shorter DENY prefix takes an ALLOW prefix away, a longer one does not.
        assert!(!can(&[
            topic_allow("ab", PatternType::Prefixed, Write),
            deny("a", PatternType::Prefixed)
        ]));
        assert!(can(&[
            topic_allow("ab", PatternType::Prefixed, Write),
            deny("abc", PatternType::Prefixed)
        ]));
        assert!(!can(&[
            topic_allow("*", PatternType::Literal, Write),
            deny("*", PatternType::Literal)
        ]));
        assert!(can(&[
            topic_allow("*", PatternType::Literal, Write),
            deny("t", PatternType::Literal)
        ]));
    }

    #[test]
    fn authorized_operations_are_a_bitfield_of_codes() {
        let index = index(&[topic_allow("t", PatternType::Literal, AclOperation::Read)]);
        let alice = Principal::user("alice");
        let requester = Requester {
            principal: &alice,
            host: LOCALHOST,
        };
        let bits = index.authorized_operations(requester, ResourceType::Topic, "t");
        assert_eq!(
            bits,
            (1 << 3) | (1 << 8),
            "READ and the DESCRIBE it implies"
        );
        assert_eq!(
            index.authorized_operations(requester, ResourceType::Topic, "u"),
            0
        );
        assert_eq!(
            operations_bitfield(ResourceType::Group.supported_operations().iter().copied()),
            (1 << 3) | (1 << 6) | (1 << 8)
        );
    }
}

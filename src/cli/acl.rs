//! `strato acl create|list|delete`: ACL administration over the Kafka protocol, like Kafka's
//! `kafka-acls.sh`. Output is an aligned table or, with `--output json`, one JSON document on
//! stdout. A binding or filter the broker refuses ends the command with its error code and
//! reason.

use std::collections::BTreeSet;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::acl_api;
use super::common::{connect, json_text};
use super::table::render_table;
use crate::config::OutputFormat;
use crate::config::acl::{
    AclCommand, AclCreateArgs, AclDeleteArgs, AclEntryArgs, AclListArgs, AclResourceArgs,
    PatternTypeArg,
};
use crate::security::acl::{
    AccessControlEntry, AclBinding, AclBindingFilter, AclOperation, CLUSTER_RESOURCE_NAME,
    PatternType, PermissionType, ResourcePattern, ResourceType, WILDCARD_HOST,
};

pub async fn run(command: AclCommand) -> anyhow::Result<()> {
    let output = match command {
        AclCommand::Create(args) => create(args).await?,
        AclCommand::List(args) => list(args).await?,
        AclCommand::Delete(args) => delete(args).await?,
    };
    print!("{output}");
    Ok(())
}

const NO_RESOURCE: &str = "name a resource: --topic, --group, --transactional-id or --cluster";

fn pattern_type(arg: PatternTypeArg) -> PatternType {
    match arg {
        PatternTypeArg::Literal => PatternType::Literal,
        PatternTypeArg::Prefixed => PatternType::Prefixed,
        PatternTypeArg::Match => PatternType::Match,
        PatternTypeArg::Any => PatternType::Any,
    }
}

/// The named resources as (type, name), in flag order.
fn resources(args: &AclResourceArgs) -> Vec<(ResourceType, String)> {
    let named = |resource_type: ResourceType, names: &[String]| {
        names
            .iter()
            .map(move |name| (resource_type, name.clone()))
            .collect::<Vec<_>>()
    };
    let mut out = named(ResourceType::Topic, &args.topic);
    out.extend(named(ResourceType::Group, &args.group));
    out.extend(named(ResourceType::TransactionalId, &args.transactional_id));
    if args.cluster {
        out.push((ResourceType::Cluster, CLUSTER_RESOURCE_NAME.to_string()));
    }
    out
}

/// `--operation` values; `All` is ALL, and ANY is not a name an operator can give.
fn operations(names: &[String]) -> anyhow::Result<Vec<AclOperation>> {
    names
        .iter()
        .map(|name| {
            AclOperation::parse(name)
                .filter(|op| !matches!(op, AclOperation::Any | AclOperation::Unknown))
                .with_context(|| {
                    format!(
                        "unknown operation {name:?}; expected one of Read, Write, Create, Delete, \
                         Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, \
                         IdempotentWrite, All"
                    )
                })
        })
        .collect()
}

/// (principal, host, permission) for each allowed and denied principal and each of its hosts
/// (`*` when none is given).
fn entries(args: &AclEntryArgs) -> Vec<(String, String, PermissionType)> {
    let mut out = Vec::new();
    for (principals, hosts, permission) in [
        (
            &args.allow_principal,
            &args.allow_host,
            PermissionType::Allow,
        ),
        (&args.deny_principal, &args.deny_host, PermissionType::Deny),
    ] {
        let hosts = if hosts.is_empty() {
            vec![WILDCARD_HOST.to_string()]
        } else {
            hosts.clone()
        };
        for principal in principals {
            for host in &hosts {
                out.push((principal.clone(), host.clone(), permission));
            }
        }
    }
    out
}

async fn create(args: AclCreateArgs) -> anyhow::Result<String> {
    let AclCreateArgs {
        change: args,
        resource_pattern_type,
    } = args;
    let resources = resources(&args.resources);
    if resources.is_empty() {
        bail!(NO_RESOURCE);
    }
    let entries = entries(&args.entries);
    if entries.is_empty() {
        bail!("name a principal: --allow-principal or --deny-principal");
    }
    let operations = operations(&args.entries.operation)?;
    if operations.is_empty() {
        bail!("name an operation: --operation (e.g. Read, Write, Describe, All)");
    }
    let pattern_type = pattern_type(resource_pattern_type);
    if !matches!(pattern_type, PatternType::Literal | PatternType::Prefixed) {
        bail!("an ACL's --resource-pattern-type is literal or prefixed");
    }
    let mut bindings = Vec::new();
    for (resource_type, name) in &resources {
        for (principal, host, permission) in &entries {
            for operation in &operations {
                bindings.push(AclBinding {
                    pattern: ResourcePattern {
                        resource_type: *resource_type,
                        name: name.clone(),
                        pattern_type,
                    },
                    entry: AccessControlEntry {
                        principal: principal.clone(),
                        host: host.clone(),
                        operation: *operation,
                        permission: *permission,
                    },
                });
            }
        }
    }
    let mut client = connect(&args.client).await?;
    let outcomes = acl_api::create_acls(client.bootstrap(), &bindings)
        .await
        .context("create ACLs")?;
    let refused: Vec<String> = bindings
        .iter()
        .zip(&outcomes)
        .filter_map(|(binding, outcome)| {
            let refusal = outcome.as_ref().err()?;
            Some(format!("{}: {refusal}", describe(binding)))
        })
        .collect();
    if !refused.is_empty() {
        bail!("ACLs not created:\n{}", refused.join("\n"));
    }
    Ok(render(&bindings, "created", args.output))
}

async fn list(args: AclListArgs) -> anyhow::Result<String> {
    let resources = resources(&args.resources);
    let pattern_type = args.resource_pattern_type.map(pattern_type);
    // Without a named resource every ACL is listed (kafka-acls.sh's `--list`).
    let patterns: Vec<(ResourceType, Option<String>, PatternType)> = if resources.is_empty() {
        vec![(
            ResourceType::Any,
            None,
            pattern_type.unwrap_or(PatternType::Any),
        )]
    } else {
        resources
            .into_iter()
            .map(|(rt, name)| (rt, Some(name), pattern_type.unwrap_or(PatternType::Literal)))
            .collect()
    };
    let principals: Vec<Option<String>> = if args.principal.is_empty() {
        vec![None]
    } else {
        args.principal.iter().cloned().map(Some).collect()
    };
    let mut client = connect(&args.client).await?;
    let mut found = BTreeSet::new();
    for (resource_type, name, pattern_type) in &patterns {
        for principal in &principals {
            let filter = AclBindingFilter {
                resource_type: *resource_type,
                name: name.clone(),
                pattern_type: *pattern_type,
                principal: principal.clone(),
                ..AclBindingFilter::any()
            };
            match acl_api::describe_acls(client.bootstrap(), &filter)
                .await
                .context("describe ACLs")?
            {
                Ok(bindings) => found.extend(bindings),
                Err(refusal) => bail!("ACLs not listed: {refusal}"),
            }
        }
    }
    let found: Vec<AclBinding> = found.into_iter().collect();
    Ok(render(&found, "acls", args.output))
}

async fn delete(args: AclDeleteArgs) -> anyhow::Result<String> {
    let AclDeleteArgs {
        change: args,
        resource_pattern_type,
    } = args;
    let resources = resources(&args.resources);
    if resources.is_empty() {
        bail!(NO_RESOURCE);
    }
    let pattern_type = pattern_type(resource_pattern_type);
    // Without principals, every entry of the resources goes.
    let entries: Vec<(Option<String>, Option<String>, PermissionType)> =
        if args.entries.allow_principal.is_empty() && args.entries.deny_principal.is_empty() {
            vec![(None, None, PermissionType::Any)]
        } else {
            entries(&args.entries)
                .into_iter()
                .map(|(principal, host, permission)| (Some(principal), Some(host), permission))
                .collect()
        };
    let mut operations = operations(&args.entries.operation)?;
    if operations.is_empty() {
        operations.push(AclOperation::Any);
    }
    let mut filters = Vec::new();
    for (resource_type, name) in &resources {
        for (principal, host, permission) in &entries {
            for operation in &operations {
                filters.push(AclBindingFilter {
                    resource_type: *resource_type,
                    name: Some(name.clone()),
                    pattern_type,
                    principal: principal.clone(),
                    host: host.clone(),
                    operation: *operation,
                    permission: *permission,
                });
            }
        }
    }
    let mut client = connect(&args.client).await?;
    let outcomes = acl_api::delete_acls(client.bootstrap(), &filters)
        .await
        .context("delete ACLs")?;
    let mut deleted = BTreeSet::new();
    let mut refused = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok(bindings) => deleted.extend(bindings),
            Err(refusal) => refused.push(refusal.to_string()),
        }
    }
    if !refused.is_empty() {
        bail!("ACLs not deleted: {}", refused.join("; "));
    }
    let deleted: Vec<AclBinding> = deleted.into_iter().collect();
    Ok(render(&deleted, "deleted", args.output))
}

/// One binding in a sentence, for error messages.
fn describe(b: &AclBinding) -> String {
    format!(
        "{} {} on {} {} ({}) from {}",
        b.entry.permission,
        b.entry.operation,
        b.pattern.resource_type,
        b.pattern.name,
        b.pattern.pattern_type,
        b.entry.principal
    )
}

fn binding_json(b: &AclBinding) -> Value {
    json!({
        "resource_type": b.pattern.resource_type.name(),
        "resource_name": b.pattern.name,
        "pattern_type": b.pattern.pattern_type.name(),
        "principal": b.entry.principal,
        "host": b.entry.host,
        "operation": b.entry.operation.name(),
        "permission": b.entry.permission.name(),
    })
}

/// The bindings as a table, or as `{"<key>": [...]}`.
fn render(bindings: &[AclBinding], key: &str, output: OutputFormat) -> String {
    match output {
        OutputFormat::Json => {
            let list: Vec<Value> = bindings.iter().map(binding_json).collect();
            json_text(&json!({ key: list }))
        }
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = bindings
                .iter()
                .map(|b| {
                    vec![
                        b.pattern.resource_type.name().to_string(),
                        b.pattern.name.clone(),
                        b.pattern.pattern_type.name().to_string(),
                        b.entry.principal.clone(),
                        b.entry.host.clone(),
                        b.entry.operation.name().to_string(),
                        b.entry.permission.name().to_string(),
                    ]
                })
                .collect();
            render_table(
                &[
                    "RESOURCE TYPE",
                    "NAME",
                    "PATTERN",
                    "PRINCIPAL",
                    "HOST",
                    "OPERATION",
                    "PERMISSION",
                ],
                &rows,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_pair_principals_with_their_hosts() {
        let args = AclEntryArgs {
            allow_principal: vec!["User:a".into(), "User:b".into()],
            deny_principal: vec!["User:c".into()],
            allow_host: Vec::new(),
            deny_host: vec!["10.0.0.1".into(), "10.0.0.2".into()],
            operation: Vec::new(),
        };
        assert_eq!(
            entries(&args),
            vec![
                ("User:a".into(), "*".into(), PermissionType::Allow),
                ("User:b".into(), "*".into(), PermissionType::Allow),
                ("User:c".into(), "10.0.0.1".into(), PermissionType::Deny),
                ("User:c".into(), "10.0.0.2".into(), PermissionType::Deny),
            ]
        );
    }

    #[test]
    fn operations_take_kafka_names() {
        assert_eq!(
            operations(&["read".into(), "DescribeConfigs".into(), "All".into()]).unwrap(),
            vec![
                AclOperation::Read,
                AclOperation::DescribeConfigs,
                AclOperation::All
            ]
        );
        assert!(operations(&["any".into()]).is_err());
        assert!(operations(&["fly".into()]).is_err());
    }
}

//! `kfdb acl list|create|delete` over the Kafka protocol (Describe/Create/DeleteAcls), with
//! kafka-acls' vocabulary: a principal (`User:alice`), a host (`*`), operations (`Read`,
//! `Write`, ... `All`), allow or deny, and a resource (`--topic`, `--group`, `--cluster`,
//! `--transactional-id`) that is a literal name or a prefix.

use super::{ConnArgs, Format, code_text, print_json, table};
use kafka_protocol::messages::create_acls_request::{AclCreation, CreateAclsRequest};
use kafka_protocol::messages::delete_acls_request::{DeleteAclsFilter, DeleteAclsRequest};
use kafka_protocol::messages::describe_acls_request::DescribeAclsRequest;
use kafka_protocol::protocol::StrBytes;
use kfdb_client::Error;

/// Kafka's ACL operation codes, by kafka-acls' names.
const OPERATIONS: &[(&str, i8)] = &[
    ("Any", 1),
    ("All", 2),
    ("Read", 3),
    ("Write", 4),
    ("Create", 5),
    ("Delete", 6),
    ("Alter", 7),
    ("Describe", 8),
    ("ClusterAction", 9),
    ("DescribeConfigs", 10),
    ("AlterConfigs", 11),
    ("IdempotentWrite", 12),
];
/// Resource types.
const RESOURCES: &[(&str, i8)] = &[
    ("Any", 1),
    ("Topic", 2),
    ("Group", 3),
    ("Cluster", 4),
    ("TransactionalId", 5),
];
/// Pattern types.
const PATTERNS: &[(&str, i8)] = &[("Any", 1), ("Match", 2), ("Literal", 3), ("Prefixed", 4)];

fn code(table: &[(&str, i8)], name: &str, what: &str) -> Result<i8, String> {
    table
        .iter()
        .find(|(n, _)| {
            n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(&name.replace(['-', '_'], ""))
        })
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            format!(
                "{what} {name}: expected one of {}",
                table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )
        })
}

fn name(table: &[(&str, i8)], c: i8) -> String {
    table
        .iter()
        .find(|(_, x)| *x == c)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| c.to_string())
}

/// Which resource, principal, host and operations an ACL command names.
#[derive(clap::Args, Clone)]
pub(crate) struct AclSpec {
    /// A topic.
    #[arg(long, group = "resource")]
    topic: Option<String>,
    /// A consumer group.
    #[arg(long, group = "resource")]
    group: Option<String>,
    /// A transactional id.
    #[arg(long, group = "resource")]
    transactional_id: Option<String>,
    /// The cluster.
    #[arg(long, group = "resource")]
    cluster: bool,
    /// literal (the name as given; `*` is every name) or prefixed; for list/delete also any
    /// or match.
    #[arg(long, default_value = "literal")]
    resource_pattern_type: String,
    /// The principal (`User:alice`).
    #[arg(long)]
    principal: Option<String>,
    /// The host (`*`: any).
    #[arg(long)]
    host: Option<String>,
    /// An operation (repeatable): Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite, All.
    #[arg(long = "operation")]
    operations: Vec<String>,
    /// Deny instead of allow.
    #[arg(long)]
    deny: bool,
}

impl AclSpec {
    fn resource(&self, filter: bool) -> Result<(i8, Option<String>), String> {
        Ok(
            match (
                &self.topic,
                &self.group,
                &self.transactional_id,
                self.cluster,
            ) {
                (Some(t), ..) => (2, Some(t.clone())),
                (_, Some(g), ..) => (3, Some(g.clone())),
                (_, _, Some(t), _) => (5, Some(t.clone())),
                (.., true) => (4, Some("kafka-cluster".into())),
                _ if filter => (1, None),
                _ => {
                    return Err(
                        "name a resource: --topic, --group, --transactional-id or --cluster".into(),
                    );
                }
            },
        )
    }
}

#[derive(clap::Subcommand)]
pub(crate) enum AclCommand {
    /// List the ACLs that match (no options: all).
    List(AclSpec),
    /// Create an ACL for each --operation.
    Create(AclSpec),
    /// Delete the ACLs that match.
    Delete(AclSpec),
}

pub(crate) async fn run(conn: &ConnArgs, command: AclCommand) -> Result<(), String> {
    let mut client = conn.client().await?;
    let s = |v: &str| StrBytes::from_string(v.to_string());
    match command {
        AclCommand::List(spec) => {
            let (rtype, rname) = spec.resource(true)?;
            let op = match spec.operations.first() {
                Some(o) => code(OPERATIONS, o, "operation")?,
                None => 1,
            };
            let request = DescribeAclsRequest::default()
                .with_resource_type_filter(rtype)
                .with_resource_name_filter(rname.as_deref().map(s))
                .with_pattern_type_filter(
                    if spec.resource_pattern_type == "literal" && rtype == 1 {
                        1
                    } else {
                        code(PATTERNS, &spec.resource_pattern_type, "pattern type")?
                    },
                )
                .with_principal_filter(spec.principal.as_deref().map(s))
                .with_host_filter(spec.host.as_deref().map(s))
                .with_operation(op)
                .with_permission_type(if spec.deny { 2 } else { 1 });
            let answer = client.call(&request, 3).await.map_err(|e| e.to_string())?;
            Error::check(
                answer.error_code,
                answer.error_message.as_deref(),
                "DescribeAcls",
            )
            .map_err(|e| e.to_string())?;
            let mut rows = Vec::new();
            for r in &answer.resources {
                for a in &r.acls {
                    rows.push(vec![
                        name(RESOURCES, r.resource_type),
                        r.resource_name.to_string(),
                        name(PATTERNS, r.pattern_type),
                        a.principal.to_string(),
                        a.host.to_string(),
                        name(OPERATIONS, a.operation),
                        if a.permission_type == 2 {
                            "Deny"
                        } else {
                            "Allow"
                        }
                        .to_string(),
                    ]);
                }
            }
            rows.sort();
            match conn.format {
                Format::Json => {
                    print_json(&serde_json::json!(
                    rows.iter().map(|r| serde_json::json!({
                        "resource_type": r[0], "resource_name": r[1], "pattern_type": r[2],
                        "principal": r[3], "host": r[4], "operation": r[5], "permission": r[6],
                    })).collect::<Vec<_>>()
                ))
                }
                Format::Table => print!(
                    "{}",
                    table(
                        &[
                            "RESOURCE",
                            "NAME",
                            "PATTERN",
                            "PRINCIPAL",
                            "HOST",
                            "OPERATION",
                            "PERMISSION"
                        ],
                        &rows
                    )
                ),
            }
            Ok(())
        }
        AclCommand::Create(spec) => {
            let (rtype, rname) = spec.resource(false)?;
            let principal = spec
                .principal
                .clone()
                .ok_or("--principal is required (User:NAME)")?;
            if spec.operations.is_empty() {
                return Err("give at least one --operation".into());
            }
            let creations = spec
                .operations
                .iter()
                .map(|o| {
                    Ok(AclCreation::default()
                        .with_resource_type(rtype)
                        .with_resource_name(s(rname.as_deref().unwrap_or_default()))
                        .with_resource_pattern_type(code(
                            PATTERNS,
                            &spec.resource_pattern_type,
                            "pattern type",
                        )?)
                        .with_principal(s(&principal))
                        .with_host(s(spec.host.as_deref().unwrap_or("*")))
                        .with_operation(code(OPERATIONS, o, "operation")?)
                        .with_permission_type(if spec.deny { 2 } else { 3 }))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let answer = client
                .call(&CreateAclsRequest::default().with_creations(creations), 3)
                .await
                .map_err(|e| e.to_string())?;
            for (r, o) in answer.results.iter().zip(&spec.operations) {
                if r.error_code != 0 {
                    return Err(format!(
                        "{o}: {}",
                        code_text(r.error_code, r.error_message.as_deref())
                    ));
                }
            }
            println!("created {} ACL(s)", spec.operations.len());
            Ok(())
        }
        AclCommand::Delete(spec) => {
            let (rtype, rname) = spec.resource(true)?;
            let ops: Vec<i8> = if spec.operations.is_empty() {
                vec![1]
            } else {
                spec.operations
                    .iter()
                    .map(|o| code(OPERATIONS, o, "operation"))
                    .collect::<Result<_, _>>()?
            };
            let filters = ops
                .iter()
                .map(|op| {
                    Ok(DeleteAclsFilter::default()
                        .with_resource_type_filter(rtype)
                        .with_resource_name_filter(rname.as_deref().map(s))
                        .with_pattern_type_filter(code(
                            PATTERNS,
                            &spec.resource_pattern_type,
                            "pattern type",
                        )?)
                        .with_principal_filter(spec.principal.as_deref().map(s))
                        .with_host_filter(spec.host.as_deref().map(s))
                        .with_operation(*op)
                        .with_permission_type(if spec.deny { 2 } else { 1 }))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let answer = client
                .call(&DeleteAclsRequest::default().with_filters(filters), 3)
                .await
                .map_err(|e| e.to_string())?;
            let mut deleted = 0;
            for r in answer.filter_results {
                Error::check(r.error_code, r.error_message.as_deref(), "DeleteAcls")
                    .map_err(|e| e.to_string())?;
                deleted += r.matching_acls.len();
            }
            println!("deleted {deleted} ACL(s)");
            Ok(())
        }
    }
}

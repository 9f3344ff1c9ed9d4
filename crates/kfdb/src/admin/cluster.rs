//! `kfdb cluster info`: the cluster id, the controller and the brokers (DescribeCluster, or
//! Metadata where the broker does not serve it).

use super::{ConnArgs, Format, print_json, table};
use kafka_protocol::messages::DescribeClusterRequest;

#[derive(clap::Subcommand)]
pub(crate) enum ClusterCommand {
    /// The cluster id, the controller and every broker with its address and rack.
    Info,
}

pub(crate) async fn run(conn: &ConnArgs, command: ClusterCommand) -> Result<(), String> {
    let ClusterCommand::Info = command;
    let mut client = conn.client().await?;
    let metadata = client
        .metadata(Some(&[]))
        .await
        .map_err(|e| e.to_string())?;
    let described = client
        .call(&DescribeClusterRequest::default(), 1)
        .await
        .ok()
        .filter(|d| d.error_code == 0);
    let cluster_id = metadata
        .cluster_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let controller = metadata.controller_id.0;
    let mut brokers: Vec<(i32, String, i32, String, bool)> = match &described {
        Some(d) => d
            .brokers
            .iter()
            .map(|b| {
                let rack = b.rack.as_ref().map(|r| r.to_string()).unwrap_or_default();
                (b.broker_id.0, b.host.to_string(), b.port, rack, b.is_fenced)
            })
            .collect(),
        None => metadata
            .brokers
            .iter()
            .map(|b| {
                let rack = b.rack.as_ref().map(|r| r.to_string()).unwrap_or_default();
                (b.node_id.0, b.host.to_string(), b.port, rack, false)
            })
            .collect(),
    };
    brokers.sort();
    match conn.format {
        Format::Json => print_json(&serde_json::json!({
            "cluster_id": cluster_id,
            "controller": controller,
            "brokers": brokers.iter().map(|(id, host, port, rack, fenced)| serde_json::json!({
                "id": id, "host": host, "port": port, "rack": rack, "fenced": fenced,
            })).collect::<Vec<_>>(),
        })),
        Format::Table => {
            println!("cluster id: {cluster_id}\ncontroller: {controller}\n");
            let rows: Vec<Vec<String>> = brokers
                .iter()
                .map(|(id, host, port, rack, fenced)| {
                    vec![
                        id.to_string(),
                        format!("{host}:{port}"),
                        rack.clone(),
                        if *fenced { "fenced" } else { "" }.to_string(),
                    ]
                })
                .collect();
            print!("{}", table(&["BROKER", "ADDRESS", "RACK", "STATE"], &rows));
        }
    }
    Ok(())
}

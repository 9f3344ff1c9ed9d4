//! DescribeCluster (key 60): the cluster id, the live brokers with their racks, and the
//! controller (the live broker with the lowest node id). Any authenticated client may ask (as in
//! Kafka); KIP-430's cluster operations say what it may do.

use super::{RequestCtx, Versions, s};
use crate::authz::acl::Resource;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};

pub const KEY: ApiKey = ApiKey::DescribeCluster;
pub const VERSIONS: Versions = Versions::new(0, 2);
pub type Request = DescribeClusterRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DescribeClusterResponse> {
    let broker = ctx.broker;
    let operations = if req.include_cluster_authorized_operations {
        ctx.authorized_operations(Resource::Cluster).await
    } else {
        i32::MIN
    };
    let brokers = broker
        .nodes(&ctx.client.listener)
        .into_iter()
        .map(|n| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(n.id))
                .with_host(s(n.host))
                .with_port(n.port)
                .with_rack(n.rack.map(s))
        })
        .collect();
    Some(
        DescribeClusterResponse::default()
            .with_endpoint_type(req.endpoint_type)
            .with_cluster_id(s(broker.log.cluster_id()))
            .with_controller_id(BrokerId(broker.controller()))
            .with_brokers(brokers)
            .with_cluster_authorized_operations(operations),
    )
}

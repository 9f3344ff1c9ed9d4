//! DescribeCluster (key 60): the cluster id and its brokers (this one), which is also the
//! controller.

use super::{RequestCtx, Versions, s};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};

pub const KEY: ApiKey = ApiKey::DescribeCluster;
pub const VERSIONS: Versions = Versions::new(0, 2);
pub type Request = DescribeClusterRequest;

pub async fn handle(ctx: &RequestCtx<'_>, req: Request) -> Option<DescribeClusterResponse> {
    let c = &ctx.broker.config;
    let me = BrokerId(c.node_id);
    Some(
        DescribeClusterResponse::default()
            .with_endpoint_type(req.endpoint_type)
            .with_cluster_id(s(ctx.broker.log.cluster_id()))
            .with_controller_id(me)
            .with_brokers(vec![
                DescribeClusterBroker::default()
                    .with_broker_id(me)
                    .with_host(s(c.advertised_host.clone()))
                    .with_port(c.advertised_port),
            ])
            .with_cluster_authorized_operations(i32::MIN),
    )
}

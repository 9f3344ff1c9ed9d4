//! `throttle_time_ms` in the responses that carry it: how a throttled client learns how long it
//! was throttled (KIP-219: it then waits that long before its next request to this broker, while
//! the broker keeps its connection muted). Every response type a handler returns is listed here
//! with the first version that has the field, so a new handler without an entry does not compile.

use kafka_protocol::messages::*;

/// Set the throttle time of a response (the larger one wins when two quotas throttled it).
pub(crate) trait ThrottleTime {
    /// Throttled for `ms` at request `version` (nothing when the version has no field).
    fn set_throttle(&mut self, version: i16, ms: i32);
}

macro_rules! throttle_time {
    ($($response:ty => $since:expr),* $(,)?) => {
        $(impl ThrottleTime for $response {
            fn set_throttle(&mut self, version: i16, ms: i32) {
                if version >= $since {
                    self.throttle_time_ms = self.throttle_time_ms.max(ms);
                }
            }
        })*
    };
}

throttle_time!(
    ProduceResponse => 1,
    FetchResponse => 1,
    ListOffsetsResponse => 2,
    MetadataResponse => 3,
    OffsetCommitResponse => 3,
    OffsetFetchResponse => 3,
    FindCoordinatorResponse => 1,
    JoinGroupResponse => 2,
    HeartbeatResponse => 1,
    LeaveGroupResponse => 1,
    SyncGroupResponse => 1,
    DescribeGroupsResponse => 1,
    ListGroupsResponse => 1,
    ApiVersionsResponse => 1,
    CreateTopicsResponse => 2,
    DeleteTopicsResponse => 1,
    DeleteRecordsResponse => 0,
    InitProducerIdResponse => 0,
    OffsetForLeaderEpochResponse => 2,
    AddPartitionsToTxnResponse => 0,
    AddOffsetsToTxnResponse => 0,
    EndTxnResponse => 0,
    TxnOffsetCommitResponse => 0,
    DescribeAclsResponse => 0,
    CreateAclsResponse => 0,
    DeleteAclsResponse => 0,
    DescribeConfigsResponse => 0,
    AlterConfigsResponse => 0,
    AlterReplicaLogDirsResponse => 0,
    DescribeLogDirsResponse => 0,
    CreatePartitionsResponse => 0,
    DeleteGroupsResponse => 0,
    ElectLeadersResponse => 0,
    IncrementalAlterConfigsResponse => 0,
    AlterPartitionReassignmentsResponse => 0,
    ListPartitionReassignmentsResponse => 0,
    OffsetDeleteResponse => 0,
    DescribeClientQuotasResponse => 0,
    AlterClientQuotasResponse => 0,
    DescribeUserScramCredentialsResponse => 0,
    AlterUserScramCredentialsResponse => 0,
    DescribeClusterResponse => 0,
    DescribeProducersResponse => 0,
    DescribeTransactionsResponse => 0,
    ListTransactionsResponse => 0,
    ConsumerGroupHeartbeatResponse => 0,
    ConsumerGroupDescribeResponse => 0,
    DescribeTopicPartitionsResponse => 0,
);

/// The SASL exchange has no throttle time (and is not subject to quotas: it comes before the
/// client has a principal).
impl ThrottleTime for SaslHandshakeResponse {
    fn set_throttle(&mut self, _: i16, _: i32) {}
}

impl ThrottleTime for SaslAuthenticateResponse {
    fn set_throttle(&mut self, _: i16, _: i32) {}
}

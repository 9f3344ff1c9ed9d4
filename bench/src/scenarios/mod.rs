//! The scenarios, one module each. Every `run(&Settings) -> bool` starts its own kfdb (`versus`
//! also Apache Kafka; `store-shapes` none: it measures the raw store in this process), prints its numbers and then one summary line (`versus`: one per
//! measurement) that starts with `bench ` and is made of `key=value` fields, and returns false if a record was lost or failed or a topic could not be
//! created. `produce::produce_records` is also the load of `latency`'s peak run and `tail`'s fill.

pub mod cluster;
pub mod commits;
pub mod compaction;
pub mod delete;
pub mod latency;
pub mod produce;
pub mod store_shapes;
pub mod tail;
pub mod topics;
pub mod versus;

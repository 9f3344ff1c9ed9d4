//! ApiVersions (key 18): the supported API keys and versions, straight from the handler registry.

use super::{APIS, RequestCtx, Versions};
use crate::error_code;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

pub const KEY: ApiKey = ApiKey::ApiVersions;
pub const VERSIONS: Versions = Versions::new(0, 4);
pub type Request = ApiVersionsRequest;

fn supported() -> Vec<ApiVersion> {
    APIS.iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key as i16)
                .with_min_version(a.versions.advertised_min)
                .with_max_version(a.versions.max)
        })
        .collect()
}

/// The answer to a version newer than we know: v0 format, `UNSUPPORTED_VERSION`, our ranges.
pub fn unsupported_version() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code::UNSUPPORTED_VERSION)
        .with_api_keys(supported())
}

pub async fn handle(_ctx: &RequestCtx<'_>, _req: Request) -> Option<ApiVersionsResponse> {
    // No supported/finalized features are sent: tagged fields left at their defaults are not
    // encoded, which old librdkafka (< 2.2) needs.
    Some(ApiVersionsResponse::default().with_api_keys(supported()))
}

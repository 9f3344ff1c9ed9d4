//! SASL on the wire, request by request: what may be sent before authentication, the PLAIN and
//! SCRAM exchanges (also v0's bare tokens), failures and what follows them (a closed connection,
//! others unaffected, the per-address brake), KIP-368 session expiry and re-authentication, and
//! Describe/AlterUserScramCredentials' checks, and with `--authorizer acl` the authorization
//! error every API answers a principal without ACLs. Real clients over SASL and TLS, and ACLs
//! granted and taken back, are in compat-tests/test_security.py and test_acls.py.

mod common;

use base64::Engine;
use bytes::Bytes;
use common::{call, request, roundtrip};
use hmac::{Hmac, Mac};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kfdb_broker::authz::AuthzConfig;
use kfdb_broker::authz::acl::Policy;
use kfdb_broker::listeners::{Listener, SecurityProtocol};
use kfdb_broker::sasl::SaslConfig;
use kfdb_broker::sasl::scram::ScramMechanism;
use kfdb_broker::{Broker, BrokerConfig};
use kfdb_kv::Database;
use kfdb_kv::embedded::EmbeddedOptions;
use kfdb_log::{Log, LogConfig};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

const USER: &str = "alice";
const PASSWORD: &str = "alice-secret";

struct Server {
    plain: SocketAddr,
    sasl: SocketAddr,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(sasl: SaslConfig) -> Server {
    start_with(sasl, AuthzConfig::default()).await
}

async fn start_with(sasl: SaslConfig, authz: AuthzConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_embedded(dir.path(), EmbeddedOptions::default()).unwrap();
    let log = Log::open(db, LogConfig::default()).await.unwrap();
    for m in ScramMechanism::ALL {
        log.users()
            .upsert(USER, m.name(), &m.credential(PASSWORD, 4096))
            .await
            .unwrap();
    }
    let a = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (plain, sasl_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let mut sasl_listener = Listener::plaintext("127.0.0.1", sasl_addr.port());
    sasl_listener.name = "SASL_PLAINTEXT".into();
    sasl_listener.protocol = SecurityProtocol::SaslPlaintext;
    let listeners = vec![
        Listener::plaintext("127.0.0.1", plain.port()),
        sasl_listener,
    ];
    let broker = Broker::new(
        log,
        BrokerConfig {
            listeners: listeners.clone(),
            sasl,
            authz,
            ..BrokerConfig::default()
        },
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sockets = vec![(a, listeners[0].clone()), (b, listeners[1].clone())];
    tokio::spawn(kfdb_broker::serve(sockets, broker, async {
        let _ = stopped.await;
    }));
    Server {
        plain,
        sasl: sasl_addr,
        _dir: dir,
        _stop: stop,
    }
}

fn quick() -> SaslConfig {
    SaslConfig {
        failed_authentication_delay: Duration::ZERO,
        ..SaslConfig::default()
    }
}

/// DescribeAcls for every binding.
fn any_acl() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1)
}

fn metadata_frame() -> Bytes {
    request(ApiKey::Metadata, 12, 7, &MetadataRequest::default())
}

/// Whether the broker closed `s` (reads EOF, or the connection resets).
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn handshake(s: &mut TcpStream, version: i16, mechanism: &str) -> SaslHandshakeResponse {
    call(
        s,
        ApiKey::SaslHandshake,
        version,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into())),
    )
    .await
}

async fn authenticate(s: &mut TcpStream, token: &[u8]) -> SaslAuthenticateResponse {
    call(
        s,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
    )
    .await
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// A SCRAM-SHA-256 client's final message for `server_first` (RFC 5802), echoing `nonce`.
fn client_final(password: &str, bare: &str, server_first: &str, nonce: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let attr = |k: &str| {
        server_first
            .split(',')
            .find_map(|a| a.strip_prefix(k))
            .unwrap()
            .to_string()
    };
    let salt = b64.decode(attr("s=")).unwrap();
    let iterations: u32 = attr("i=").parse().unwrap();
    let salted = ScramMechanism::Sha256.salted_password(password.as_bytes(), &salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key).to_vec();
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{bare},{server_first},{without_proof}");
    let sig = hmac(&stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    format!("{without_proof},p={}", b64.encode(proof))
}

/// A full SCRAM-SHA-256 login on `s`; the final answer.
async fn scram_login(s: &mut TcpStream, password: &str) -> SaslAuthenticateResponse {
    assert_eq!(handshake(s, 1, "SCRAM-SHA-256").await.error_code, 0);
    let bare = format!("n={USER},r=fyko+d2lbbFgONRv9qkxdawL");
    let first = authenticate(s, format!("n,,{bare}").as_bytes()).await;
    assert_eq!(first.error_code, 0, "{:?}", first.error_message);
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
    let nonce = server_first
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("r=")
        .to_string();
    let msg = client_final(password, &bare, &server_first, &nonce);
    authenticate(s, msg.as_bytes()).await
}

#[tokio::test]
async fn nothing_but_api_versions_and_sasl_before_authentication() {
    let srv = start(quick()).await;
    let mut s = TcpStream::connect(srv.sasl).await.unwrap();
    let versions: ApiVersionsResponse = call(
        &mut s,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    )
    .await;
    for key in [ApiKey::SaslHandshake, ApiKey::SaslAuthenticate] {
        assert!(
            versions.api_keys.iter().any(|k| k.api_key == key as i16),
            "{key:?}"
        );
    }
    assert!(
        roundtrip(&mut s, &metadata_frame()).await.is_none(),
        "Metadata before SASL"
    );

    // The plaintext listener serves at once, and answers SASL with ILLEGAL_SASL_STATE.
    let mut p = TcpStream::connect(srv.plain).await.unwrap();
    let r: MetadataResponse = call(&mut p, ApiKey::Metadata, 12, &MetadataRequest::default()).await;
    assert_eq!(r.brokers.len(), 1);
    assert_eq!(
        r.brokers[0].port,
        i32::from(srv.plain.port()),
        "this listener's address"
    );
    assert_eq!(handshake(&mut p, 1, "PLAIN").await.error_code, 34);
}

#[tokio::test]
async fn scram_login_then_metadata_names_the_sasl_listener() {
    let srv = start(quick()).await;
    let mut s = TcpStream::connect(srv.sasl).await.unwrap();
    let done = scram_login(&mut s, PASSWORD).await;
    assert_eq!(done.error_code, 0, "{:?}", done.error_message);
    assert!(done.auth_bytes.starts_with(b"v="));
    assert_eq!(done.session_lifetime_ms, 0);
    let r: MetadataResponse = call(&mut s, ApiKey::Metadata, 12, &MetadataRequest::default()).await;
    assert_eq!(r.brokers[0].port, i32::from(srv.sasl.port()));
}

#[tokio::test]
async fn failures_answer_then_close_and_spare_other_connections() {
    let srv = start(quick()).await;
    let mut other = TcpStream::connect(srv.sasl).await.unwrap();
    assert_eq!(scram_login(&mut other, PASSWORD).await.error_code, 0);

    // Wrong password.
    let mut s = TcpStream::connect(srv.sasl).await.unwrap();
    let r = scram_login(&mut s, "wrong").await;
    assert_eq!(r.error_code, 58);
    assert!(r.error_message.unwrap().contains("invalid credentials"));
    assert!(closed(&mut s).await);

    // Unknown mechanism; PLAIN is not offered without TLS.
    for mechanism in ["GSSAPI", "PLAIN"] {
        let mut s = TcpStream::connect(srv.sasl).await.unwrap();
        let r = handshake(&mut s, 1, mechanism).await;
        assert_eq!(r.error_code, 33, "{mechanism}");
        let offered: Vec<&str> = r.mechanisms.iter().map(|m| m.as_str()).collect();
        assert_eq!(offered, ["SCRAM-SHA-256", "SCRAM-SHA-512"]);
        assert!(closed(&mut s).await);
    }

    // Truncated and malformed first messages, an unknown user.
    for token in [
        &b"n,,"[..],
        b"",
        b"n,,n=alice",
        b"\xff\x00",
        b"n,,n=nobody,r=abc",
    ] {
        let mut s = TcpStream::connect(srv.sasl).await.unwrap();
        assert_eq!(handshake(&mut s, 1, "SCRAM-SHA-256").await.error_code, 0);
        let r = authenticate(&mut s, token).await;
        assert_eq!(r.error_code, 58, "{token:?}");
        assert!(closed(&mut s).await);
    }

    // A final message that does not echo the server's nonce.
    let mut s = TcpStream::connect(srv.sasl).await.unwrap();
    assert_eq!(handshake(&mut s, 1, "SCRAM-SHA-256").await.error_code, 0);
    let bare = format!("n={USER},r=abc");
    let first = authenticate(&mut s, format!("n,,{bare}").as_bytes()).await;
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
    let msg = client_final(PASSWORD, &bare, &server_first, "abcdef");
    let r = authenticate(&mut s, msg.as_bytes()).await;
    assert_eq!(r.error_code, 58);
    assert!(r.error_message.unwrap().contains("nonce"));

    // SaslAuthenticate without a handshake.
    let mut s = TcpStream::connect(srv.sasl).await.unwrap();
    assert_eq!(authenticate(&mut s, b"n,,n=a,r=b").await.error_code, 34);
    assert!(closed(&mut s).await);

    // The authenticated connection is unaffected.
    let r: MetadataResponse = call(
        &mut other,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default(),
    )
    .await;
    assert_eq!(r.brokers.len(), 1);
}

#[tokio::test]
async fn an_address_that_fails_too_often_is_slowed_down() {
    let srv = start(quick()).await;
    let started = std::time::Instant::now();
    for _ in 0..10 {
        let mut s = TcpStream::connect(srv.sasl).await.unwrap();
        assert_eq!(handshake(&mut s, 1, "SCRAM-SHA-256").await.error_code, 0);
        let r = authenticate(&mut s, b"n,,n=mallory,r=abc").await;
        assert_eq!(r.error_code, 58);
    }
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "the first ten are not slowed: {:?}",
        started.elapsed()
    );
    // The eleventh waits for the bucket (2 per second), and the right password still works.
    let mut s = TcpStream::connect(srv.sasl).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(scram_login(&mut s, PASSWORD).await.error_code, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    // A success costs nothing: the next one waits just as long, not longer.
    let mut s = TcpStream::connect(srv.sasl).await.unwrap();
    let started = std::time::Instant::now();
    assert_eq!(scram_login(&mut s, PASSWORD).await.error_code, 0);
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sessions_expire_and_reauthenticate() {
    let srv = start(SaslConfig {
        max_reauth: Some(Duration::from_millis(400)),
        ..quick()
    })
    .await;
    let mut s = TcpStream::connect(srv.sasl).await.unwrap();
    let r = scram_login(&mut s, PASSWORD).await;
    assert_eq!((r.error_code, r.session_lifetime_ms), (0, 400));
    // Re-authenticate in time: the connection serves on past the first session's end.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(scram_login(&mut s, PASSWORD).await.error_code, 0);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let _: MetadataResponse = call(&mut s, ApiKey::Metadata, 12, &MetadataRequest::default()).await;
    // Let it expire: the next request closes the connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(roundtrip(&mut s, &metadata_frame()).await.is_none());
}

#[tokio::test]
async fn v0_handshake_takes_bare_tokens() {
    let srv = start(SaslConfig {
        plain_allow_plaintext: true,
        ..quick()
    })
    .await;
    let mut s = TcpStream::connect(srv.sasl).await.unwrap();
    assert_eq!(handshake(&mut s, 0, "PLAIN").await.error_code, 0);
    let token = format!("\0{USER}\0{PASSWORD}");
    let mut frame = (token.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(token.as_bytes());
    let answer = roundtrip(&mut s, &frame).await.expect("a bare answer");
    assert!(answer.is_empty());
    let _: MetadataResponse = call(&mut s, ApiKey::Metadata, 12, &MetadataRequest::default()).await;

    // A wrong password over v0 closes the connection without an answer.
    let mut s = TcpStream::connect(srv.sasl).await.unwrap();
    assert_eq!(handshake(&mut s, 0, "PLAIN").await.error_code, 0);
    let token = format!("\0{USER}\0nope");
    let mut frame = (token.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(token.as_bytes());
    assert!(roundtrip(&mut s, &frame).await.is_none());
}

#[tokio::test]
async fn user_scram_credentials_are_checked_as_kafka_checks_them() {
    let srv = start(quick()).await;
    let mut s = TcpStream::connect(srv.plain).await.unwrap();
    let name = |n: &str| StrBytes::from_string(n.into());
    let upsert = |user: &str, mechanism: i8, iterations: i32| {
        ScramCredentialUpsertion::default()
            .with_name(name(user))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(Bytes::from_static(b"salt"))
            .with_salted_password(Bytes::from(
                ScramMechanism::Sha256.salted_password(b"pw", b"salt", 4096),
            ))
    };
    let r: AlterUserScramCredentialsResponse = call(
        &mut s,
        ApiKey::AlterUserScramCredentials,
        0,
        &AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![
                upsert("bob", 1, 4096),
                upsert("carol", 1, 100),
                upsert("dave", 9, 4096),
                upsert("", 1, 4096),
                upsert("erin", 1, 4096),
            ])
            .with_deletions(vec![
                ScramCredentialDeletion::default()
                    .with_name(name("erin"))
                    .with_mechanism(1),
                ScramCredentialDeletion::default()
                    .with_name(name("frank"))
                    .with_mechanism(2),
            ]),
    )
    .await;
    let codes: Vec<(String, i16)> = r
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    assert_eq!(
        codes,
        [
            ("erin".to_string(), 91),
            ("frank".to_string(), 91),
            ("bob".to_string(), 0),
            ("carol".to_string(), 93),
            ("dave".to_string(), 33),
            ("".to_string(), 93),
        ]
    );

    // One alteration per user and request, whatever the mechanisms (Kafka's controller).
    let r: AlterUserScramCredentialsResponse = call(
        &mut s,
        ApiKey::AlterUserScramCredentials,
        0,
        &AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![upsert("gina", 1, 4096), upsert("gina", 2, 4096)]),
    )
    .await;
    assert_eq!(r.results.len(), 1);
    assert_eq!(
        (r.results[0].user.as_str(), r.results[0].error_code),
        ("gina", 92)
    );

    let r: DescribeUserScramCredentialsResponse = call(
        &mut s,
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
            UserName::default().with_name(name("bob")),
            UserName::default().with_name(name("carol")),
            UserName::default().with_name(name("alice")),
            UserName::default().with_name(name("alice")),
        ])),
    )
    .await;
    // (user, error code, [(mechanism, iterations)])
    type Described = (String, i16, Vec<(i8, i32)>);
    let got: Vec<Described> = r
        .results
        .iter()
        .map(|r| {
            (
                r.user.to_string(),
                r.error_code,
                r.credential_infos
                    .iter()
                    .map(|c| (c.mechanism, c.iterations))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("bob".to_string(), 0, vec![(1, 4096)]),
            ("carol".to_string(), 91, vec![]),
            ("alice".to_string(), 92, vec![]),
        ]
    );
    let all: DescribeUserScramCredentialsResponse = call(
        &mut s,
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default(),
    )
    .await;
    let users: Vec<String> = all.results.iter().map(|r| r.user.to_string()).collect();
    assert_eq!(users, ["alice", "bob"]);
    assert_eq!(all.results[0].credential_infos.len(), 2);

    // bob logs in with the password the salted password came from.
    let mut login = TcpStream::connect(srv.sasl).await.unwrap();
    assert_eq!(
        handshake(&mut login, 1, "SCRAM-SHA-256").await.error_code,
        0
    );
    let bare = "n=bob,r=xyz";
    let first = authenticate(&mut login, format!("n,,{bare}").as_bytes()).await;
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
    let nonce = server_first
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("r=")
        .to_string();
    let r = authenticate(
        &mut login,
        client_final("pw", bare, &server_first, &nonce).as_bytes(),
    )
    .await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
}

#[tokio::test]
async fn without_acls_every_api_answers_its_authorization_error() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
    let srv = start_with(
        quick(),
        AuthzConfig {
            enabled: true,
            policy: Policy {
                super_users: vec!["User:ANONYMOUS".into()],
                allow_if_no_acl: false,
            },
        },
    )
    .await;
    // The super user (PLAINTEXT: User:ANONYMOUS) makes a topic.
    let mut admin = TcpStream::connect(srv.plain).await.unwrap();
    let topic = StrBytes::from_static_str("guarded");
    let r: CreateTopicsResponse = call(
        &mut admin,
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(topic.clone()))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]),
    )
    .await;
    assert_eq!(r.topics[0].error_code, 0);

    let mut s = TcpStream::connect(srv.sasl).await.unwrap();
    assert_eq!(scram_login(&mut s, PASSWORD).await.error_code, 0);
    let tname = TopicName(topic.clone());

    let all_topics = MetadataRequest::default().with_topics(None);
    let r: MetadataResponse = call(&mut s, ApiKey::Metadata, 12, &all_topics).await;
    assert!(r.topics.is_empty(), "no topic is visible");
    let r: ListOffsetsResponse = call(
        &mut s,
        ApiKey::ListOffsets,
        7,
        &ListOffsetsRequest::default().with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(tname.clone())
                .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
        ]),
    )
    .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 29);
    let r: DescribeConfigsResponse = call(
        &mut s,
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(topic.clone()),
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("")),
        ]),
    )
    .await;
    assert_eq!((r.results[0].error_code, r.results[1].error_code), (29, 31));
    let r: DeleteTopicsResponse = call(
        &mut s,
        ApiKey::DeleteTopics,
        6,
        &DeleteTopicsRequest::default().with_topics(vec![
            delete_topics_request::DeleteTopicState::default().with_name(Some(tname.clone())),
        ]),
    )
    .await;
    assert_eq!(r.responses[0].error_code, 29);
    let r: CreatePartitionsResponse = call(
        &mut s,
        ApiKey::CreatePartitions,
        3,
        &CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(tname.clone())
                .with_count(3),
        ]),
    )
    .await;
    assert_eq!(r.results[0].error_code, 29);
    let group = GroupId(StrBytes::from_static_str("g"));
    let r: OffsetFetchResponse = call(
        &mut s,
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default().with_group_id(group.clone()),
        ]),
    )
    .await;
    assert_eq!(r.groups[0].error_code, 30);
    let r: DescribeGroupsResponse = call(
        &mut s,
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![group.clone()]),
    )
    .await;
    assert_eq!(r.groups[0].error_code, 30);
    let r: DeleteGroupsResponse = call(
        &mut s,
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![group.clone()]),
    )
    .await;
    assert_eq!(r.results[0].error_code, 30);
    let r: FindCoordinatorResponse = call(
        &mut s,
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str("tx"))
            .with_key_type(1),
    )
    .await;
    assert_eq!(r.error_code, 53);
    let r: InitProducerIdResponse = call(
        &mut s,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
            .with_transaction_timeout_ms(60_000),
    )
    .await;
    assert_eq!(r.error_code, 53);
    let r: InitProducerIdResponse = call(
        &mut s,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    )
    .await;
    assert_eq!(
        r.error_code, 31,
        "idempotence needs IDEMPOTENT_WRITE or WRITE on a topic"
    );
    let r: DescribeLogDirsResponse = call(
        &mut s,
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default(),
    )
    .await;
    assert_eq!(r.error_code, 31);
    let r: DescribeUserScramCredentialsResponse = call(
        &mut s,
        ApiKey::DescribeUserScramCredentials,
        0,
        &DescribeUserScramCredentialsRequest::default(),
    )
    .await;
    assert_eq!(r.error_code, 31);
    let r: DescribeAclsResponse = call(&mut s, ApiKey::DescribeAcls, 3, &any_acl()).await;
    assert_eq!(r.error_code, 31);
    let r: ListGroupsResponse =
        call(&mut s, ApiKey::ListGroups, 4, &ListGroupsRequest::default()).await;
    assert_eq!((r.error_code, r.groups.len()), (0, 0));

    // The super user sees the topic, and the ACL APIs work for it.
    let r: MetadataResponse = call(&mut admin, ApiKey::Metadata, 12, &all_topics).await;
    assert_eq!(r.topics.len(), 1);
    let r: DescribeAclsResponse = call(&mut admin, ApiKey::DescribeAcls, 3, &any_acl()).await;
    assert_eq!((r.error_code, r.resources.len()), (0, 0));
}

#[tokio::test]
async fn acl_apis_are_security_disabled_without_an_authorizer() {
    let srv = start(quick()).await;
    let mut s = TcpStream::connect(srv.plain).await.unwrap();
    let r: DescribeAclsResponse = call(&mut s, ApiKey::DescribeAcls, 3, &any_acl()).await;
    assert_eq!(r.error_code, 54);
}

#[tokio::test]
async fn before_authentication_frames_are_small_and_reauthentication_keeps_its_mechanism() {
    use tokio::io::AsyncWriteExt;
    let srv = start(SaslConfig {
        max_reauth: Some(Duration::from_secs(60)),
        ..quick()
    })
    .await;
    // A 1 MiB frame before authentication: closed (Kafka's 512 KiB sasl.server.max.receive.size).
    let mut s = TcpStream::connect(srv.sasl).await.unwrap();
    s.write_all(&(1i32 << 20).to_be_bytes()).await.unwrap();
    assert!(closed(&mut s).await);
    let mut s = TcpStream::connect(srv.sasl).await.unwrap();
    assert_eq!(scram_login(&mut s, PASSWORD).await.error_code, 0);
    // Re-authentication with another mechanism is refused, then the connection closes.
    let r = handshake(&mut s, 1, "SCRAM-SHA-512").await;
    assert_eq!(r.error_code, 33);
    assert!(closed(&mut s).await);
}

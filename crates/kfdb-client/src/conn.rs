//! One connection to one broker: framing, correlation ids, and the API versions the broker
//! announced (ApiVersions, asked first), so each request is sent at a version both sides know.

use crate::error::{Error, Result};
use crate::security::{Scram, ScramClient, Security};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response this client reads (a Fetch answers at most what it asked for).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// A byte stream to a broker: TCP, or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A connection to one broker.
pub struct Connection {
    stream: Box<dyn Stream>,
    addr: String,
    client_id: StrBytes,
    correlation: i32,
    /// API key → (min, max) version the broker serves.
    versions: HashMap<i16, (i16, i16)>,
    timeout: Duration,
}

impl Connection {
    /// Connect to `addr` (host:port): TLS and SASL as `security` says, then ask which API
    /// versions it serves.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<Self> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Io(format!("{addr}: no connection within {timeout:?}")))?
            .map_err(|e| Error::Io(format!("{addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &security.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(Security::tls_config(tls)?);
                let name = Security::server_name(addr)?;
                let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| Error::Io(format!("{addr}: no TLS handshake within {timeout:?}")))?
                    .map_err(|e| Error::Io(format!("{addr}: TLS: {e}")))?;
                Box::new(tls)
            }
        };
        let mut conn = Self {
            stream,
            addr: addr.to_string(),
            client_id: StrBytes::from_string(client_id.to_string()),
            correlation: 0,
            versions: HashMap::new(),
            timeout,
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kfdb-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut answer: ApiVersionsResponse = conn.send(&request, 3).await?;
        if answer.error_code == 35 {
            // UNSUPPORTED_VERSION: an older broker answers with v0.
            answer = conn.send(&ApiVersionsRequest::default(), 0).await?;
        }
        Error::check(answer.error_code, None, "ApiVersions")?;
        conn.versions = answer
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        if let Some(sasl) = &security.sasl {
            conn.authenticate(&sasl.mechanism, &sasl.username, &sasl.password)
                .await?;
        }
        Ok(conn)
    }

    /// SaslHandshake, then the mechanism's exchange in SaslAuthenticate requests.
    async fn authenticate(
        &mut self,
        mechanism: &str,
        username: &str,
        password: &str,
    ) -> Result<()> {
        let shake = self
            .send(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_string(mechanism.to_string())),
                1,
            )
            .await?;
        let offered: Vec<String> = shake.mechanisms.iter().map(|m| m.to_string()).collect();
        Error::check(
            shake.error_code,
            Some(&format!("the broker offers {offered:?}")),
            &format!("SASL {mechanism}"),
        )?;
        let version = self.version::<SaslAuthenticateRequest>(2)?;
        let round =
            |bytes: Vec<u8>| SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
        match Scram::from_mechanism(mechanism) {
            None if mechanism == "PLAIN" => {
                let token = format!("\0{username}\0{password}").into_bytes();
                let answer = self.send(&round(token), version).await?;
                Error::check(
                    answer.error_code,
                    answer.error_message.as_deref(),
                    "SASL PLAIN",
                )
            }
            None => Err(Error::Unsupported(format!("SASL mechanism {mechanism}"))),
            Some(scram) => {
                let mut client = ScramClient::new(scram, username, password);
                let first = self.send(&round(client.first_message()), version).await?;
                Error::check(first.error_code, first.error_message.as_deref(), mechanism)?;
                let fin = client.final_message(&first.auth_bytes)?;
                let last = self.send(&round(fin), version).await?;
                Error::check(last.error_code, last.error_message.as_deref(), mechanism)?;
                client.verify(&last.auth_bytes)
            }
        }
    }

    /// The broker's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The version `R` goes at: the highest both sides know, at most `cap`.
    pub fn version<R: Request>(&self, cap: i16) -> Result<i16> {
        let name = std::any::type_name::<R>()
            .rsplit("::")
            .next()
            .unwrap_or("request");
        let (min, max) = *self
            .versions
            .get(&R::KEY)
            .ok_or_else(|| Error::Unsupported(name.to_string()))?;
        let v = max.min(R::VERSIONS.max).min(cap);
        if v < min.max(R::VERSIONS.min) {
            return Err(Error::Unsupported(name.to_string()));
        }
        Ok(v)
    }

    /// Send `request` at the best version (at most `cap`) and read its response.
    pub async fn call<R: Request>(&mut self, request: &R, cap: i16) -> Result<R::Response> {
        let version = self.version::<R>(cap)?;
        self.send(request, version).await
    }

    /// Send `request` at `version` and read its response.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header
            .encode(&mut frame, R::header_version(version))
            .map_err(|e| Error::Protocol(format!("encoding a request header: {e}")))?;
        request
            .encode(&mut frame, version)
            .map_err(|e| Error::Protocol(format!("encoding a request: {e}")))?;
        let n = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&n.to_be_bytes());
        let timeout = self.timeout;
        let addr = self.addr.clone();
        let mut body = tokio::time::timeout(timeout, self.round_trip(&frame))
            .await
            .map_err(|_| Error::Io(format!("{addr}: no answer within {timeout:?}")))??;
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| Error::Protocol(format!("decoding a response header: {e}")))?;
        if header.correlation_id != self.correlation {
            return Err(Error::Protocol(format!(
                "{}: answer to request {} while waiting for {}",
                self.addr, header.correlation_id, self.correlation
            )));
        }
        R::Response::decode(&mut body, version)
            .map_err(|e| Error::Protocol(format!("decoding a response: {e}")))
    }

    async fn round_trip(&mut self, frame: &[u8]) -> Result<Bytes> {
        let io = |e: std::io::Error| Error::Io(format!("{}: {e}", self.addr));
        self.stream.write_all(frame).await.map_err(io)?;
        let len = self.stream.read_i32().await.map_err(io)?;
        if len < 0 || len as usize > MAX_RESPONSE_BYTES {
            return Err(Error::Protocol(format!(
                "{}: response of {len} bytes",
                self.addr
            )));
        }
        let mut buf = BytesMut::zeroed(len as usize);
        self.stream.read_exact(&mut buf).await.map_err(io)?;
        Ok(buf.freeze())
    }
}

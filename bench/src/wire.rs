//! Kafka requests without a client library, for the measurements that must see kfdb itself: one
//! blocking TCP connection, one request in flight, and kafka-protocol for the bytes (request
//! header and body, response header and body). Framing is the 4-byte length prefix. Encoding,
//! the round trip and decoding are separate steps so a caller can time the round trip alone.

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// One connection to kfdb.
pub struct Connection {
    sock: TcpStream,
    correlation: i32,
}

impl Connection {
    /// Connect (TCP_NODELAY, like the clients); panics if kfdb does not answer.
    pub fn connect(addr: &str) -> Connection {
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_nodelay(true).unwrap();
        Connection {
            sock,
            correlation: 0,
        }
    }

    /// The frame of one request: length, header (next correlation id, client id `kfdb-bench`) and
    /// body at `version`.
    pub fn encode<R: Encodable>(&mut self, api: ApiKey, version: i16, request: &R) -> Bytes {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("kfdb-bench")));
        let mut out = BytesMut::new();
        out.put_i32(0);
        header
            .encode(&mut out, api.request_header_version(version))
            .expect("encode request header");
        request.encode(&mut out, version).expect("encode request");
        let n = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&n.to_be_bytes());
        out.freeze()
    }

    /// Send a frame and read the whole response frame: its bytes after the length prefix.
    ///
    /// The body is read straight into fresh capacity (`read_to_end` gives the socket uninitialised
    /// memory), not into a zero-filled buffer: a Fetch response of 16 MiB was memset before every
    /// read, client work that the loopback baseline it is compared with does not do.
    pub fn round_trip(&mut self, frame: &[u8]) -> Bytes {
        self.sock.write_all(frame).expect("send request");
        let mut len = [0u8; 4];
        self.sock.read_exact(&mut len).expect("read response size");
        let n = i32::from_be_bytes(len) as usize;
        let mut body = Vec::with_capacity(n);
        (&mut self.sock)
            .take(n as u64)
            .read_to_end(&mut body)
            .expect("read response");
        assert_eq!(body.len(), n, "the connection closed inside a response");
        Bytes::from(body)
    }

    /// Encode, round trip, decode.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        let frame = self.encode(api, version, request);
        decode(api, version, self.round_trip(&frame))
    }
}

/// A response (header and body) of `api` at `version`. Byte fields (a Fetch response's records)
/// stay slices of `response`: nothing is copied.
pub fn decode<Resp: Decodable>(api: ApiKey, version: i16, mut response: Bytes) -> Resp {
    ResponseHeader::decode(&mut response, api.response_header_version(version))
        .expect("decode response header");
    Resp::decode(&mut response, version).unwrap_or_else(|e| panic!("decode {api:?} response: {e}"))
}

//! The client's errors: I/O, a protocol fault, an API the broker does not serve, or a Kafka error
//! code the broker answered (named as Kafka names it).

use std::fmt;

/// A client error.
#[derive(Debug)]
pub enum Error {
    /// Connecting, reading or writing failed.
    Io(String),
    /// The broker answered something that does not decode, or not in time.
    Protocol(String),
    /// The broker does not serve this API at a version this client speaks.
    Unsupported(String),
    /// The broker answered a Kafka error code.
    Kafka {
        /// Kafka's error code.
        code: i16,
        /// The broker's message, or what was being done.
        message: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Kafka's name of an error code (`UNKNOWN_TOPIC_OR_PARTITION`), or the number.
pub fn error_name(code: i16) -> String {
    match kafka_protocol::error::ResponseError::try_from_code(code) {
        Some(e) => {
            let camel = format!("{e:?}");
            let mut out = String::new();
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
        None => format!("error code {code}"),
    }
}

impl Error {
    /// A Kafka error code with what was being done, or `Ok` when the code is 0.
    pub fn check(code: i16, message: Option<&str>, doing: &str) -> Result<()> {
        if code == 0 {
            return Ok(());
        }
        Err(Error::Kafka {
            code,
            message: match message {
                Some(m) if !m.is_empty() => format!("{doing}: {m}"),
                _ => doing.to_string(),
            },
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Protocol(e) => write!(f, "protocol: {e}"),
            Self::Unsupported(api) => write!(f, "the broker does not serve {api}"),
            Self::Kafka { code, message } => write!(f, "{} ({message})", error_name(*code)),
        }
    }
}

impl std::error::Error for Error {}

//! FoundationDB's atomic operations as pure functions over `Option<&[u8]>`, and versionstamp
//! placement. The embedded backend applies these at commit and for read-your-writes; FoundationDB does
//! the same server-side, so the conformance suite checks one against the other.

use crate::error::{KvError, KvResult};
use crate::types::{MAX_VALUE_SIZE, MutationType};

/// The value after applying `op` with `param` to `current` (`None`: the key is absent or cleared).
/// Versionstamp operations are not handled here (they need the commit's versionstamp).
pub fn apply(op: MutationType, current: Option<&[u8]>, param: &[u8]) -> Option<Vec<u8>> {
    match op {
        MutationType::Add => Some(add(current.unwrap_or(&[]), param)),
        MutationType::BitAnd => Some(match current {
            None => param.to_vec(),
            Some(c) => bitwise(c, param, |a, b| a & b),
        }),
        MutationType::BitOr => Some(bitwise(current.unwrap_or(&[]), param, |a, b| a | b)),
        MutationType::BitXor => Some(bitwise(current.unwrap_or(&[]), param, |a, b| a ^ b)),
        MutationType::AppendIfFits => {
            let c = current.unwrap_or(&[]);
            if c.len() + param.len() > MAX_VALUE_SIZE {
                Some(c.to_vec())
            } else {
                let mut v = c.to_vec();
                v.extend_from_slice(param);
                Some(v)
            }
        }
        MutationType::Max => Some(match current {
            None => param.to_vec(),
            Some(c) => {
                let c = fit(c, param.len());
                if le_cmp(&c, param).is_lt() {
                    param.to_vec()
                } else {
                    c
                }
            }
        }),
        MutationType::Min => Some(match current {
            None => param.to_vec(),
            Some(c) => {
                let c = fit(c, param.len());
                if le_cmp(&c, param).is_gt() {
                    param.to_vec()
                } else {
                    c
                }
            }
        }),
        MutationType::ByteMin => Some(match current {
            Some(c) if c < param => c.to_vec(),
            _ => param.to_vec(),
        }),
        MutationType::ByteMax => Some(match current {
            Some(c) if c > param => c.to_vec(),
            _ => param.to_vec(),
        }),
        MutationType::CompareAndClear => match current {
            Some(c) if c == param => None,
            other => other.map(<[u8]>::to_vec),
        },
        MutationType::SetVersionstampedKey | MutationType::SetVersionstampedValue => {
            current.map(<[u8]>::to_vec)
        }
    }
}

/// `current` zero-extended or truncated to `len` bytes (FoundationDB's rule for integer operands).
fn fit(current: &[u8], len: usize) -> Vec<u8> {
    let mut v = current[..current.len().min(len)].to_vec();
    v.resize(len, 0);
    v
}

fn add(current: &[u8], param: &[u8]) -> Vec<u8> {
    let c = fit(current, param.len());
    let mut out = Vec::with_capacity(param.len());
    let mut carry = 0u16;
    for (a, b) in c.iter().zip(param) {
        let s = u16::from(*a) + u16::from(*b) + carry;
        out.push((s & 0xff) as u8);
        carry = s >> 8;
    }
    out
}

fn bitwise(current: &[u8], param: &[u8], f: impl Fn(u8, u8) -> u8) -> Vec<u8> {
    let c = fit(current, param.len());
    c.iter().zip(param).map(|(a, b)| f(*a, *b)).collect()
}

/// Compare two equal-length little-endian unsigned integers.
fn le_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.iter().rev().cmp(b.iter().rev())
}

/// Check a versionstamp template (`bytes ++ offset:u32 LE`) and return `(bytes, offset)`.
pub fn split_versionstamp_template(template: &[u8]) -> KvResult<(&[u8], usize)> {
    let invalid = || {
        KvError::new(
            KvError::CLIENT_INVALID_OPERATION,
            "versionstamp offset outside the key or value",
        )
    };
    if template.len() < 4 {
        return Err(invalid());
    }
    let (body, off) = template.split_at(template.len() - 4);
    let offset = u32::from_le_bytes([off[0], off[1], off[2], off[3]]) as usize;
    if offset.checked_add(10).is_none_or(|end| end > body.len()) {
        return Err(invalid());
    }
    Ok((body, offset))
}

/// The bytes of a checked template with the 10-byte versionstamp written at its offset.
pub fn place_versionstamp(template: &[u8], stamp: &[u8; 10]) -> KvResult<Vec<u8>> {
    let (body, offset) = split_versionstamp_template(template)?;
    let mut out = body.to_vec();
    out[offset..offset + 10].copy_from_slice(stamp);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MutationType::*;

    fn le(n: u64) -> Vec<u8> {
        n.to_le_bytes().to_vec()
    }

    #[test]
    fn add_wraps_and_takes_param_width() {
        assert_eq!(apply(Add, None, &le(5)), Some(le(5)));
        assert_eq!(apply(Add, Some(&le(5)), &le(7)), Some(le(12)));
        assert_eq!(apply(Add, Some(&[0xff]), &[1]), Some(vec![0]));
        // A shorter current value is zero-extended; a longer one truncated.
        assert_eq!(apply(Add, Some(&[1]), &[1, 0]), Some(vec![2, 0]));
        assert_eq!(apply(Add, Some(&[1, 1, 1]), &[1]), Some(vec![2]));
    }

    #[test]
    fn min_max_are_unsigned_little_endian() {
        assert_eq!(apply(Max, Some(&le(300)), &le(2)), Some(le(300)));
        assert_eq!(apply(Max, Some(&le(2)), &le(300)), Some(le(300)));
        assert_eq!(apply(Min, Some(&le(300)), &le(2)), Some(le(2)));
        assert_eq!(apply(Min, None, &le(9)), Some(le(9)));
        assert_eq!(apply(Max, None, &le(9)), Some(le(9)));
    }

    #[test]
    fn bitwise_and_byte_ops() {
        assert_eq!(apply(BitAnd, None, &[0x0f]), Some(vec![0x0f]));
        assert_eq!(apply(BitAnd, Some(&[0x3c]), &[0x0f]), Some(vec![0x0c]));
        assert_eq!(apply(BitOr, Some(&[0x30]), &[0x0f]), Some(vec![0x3f]));
        assert_eq!(apply(BitXor, None, &[0x0f]), Some(vec![0x0f]));
        assert_eq!(apply(ByteMin, Some(b"b"), b"a"), Some(b"a".to_vec()));
        assert_eq!(apply(ByteMax, Some(b"b"), b"a"), Some(b"b".to_vec()));
        assert_eq!(apply(ByteMin, None, b"z"), Some(b"z".to_vec()));
    }

    #[test]
    fn compare_and_clear_and_append() {
        assert_eq!(apply(CompareAndClear, Some(b"x"), b"x"), None);
        assert_eq!(
            apply(CompareAndClear, Some(b"y"), b"x"),
            Some(b"y".to_vec())
        );
        assert_eq!(apply(CompareAndClear, None, b"x"), None);
        assert_eq!(
            apply(AppendIfFits, Some(b"ab"), b"c"),
            Some(b"abc".to_vec())
        );
        let big = vec![0u8; MAX_VALUE_SIZE];
        assert_eq!(
            apply(AppendIfFits, Some(&big), b"c").map(|v| v.len()),
            Some(MAX_VALUE_SIZE)
        );
    }

    #[test]
    fn versionstamp_templates() {
        let mut t = b"k-..........-x".to_vec();
        t.extend_from_slice(&2u32.to_le_bytes());
        let stamp = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(
            place_versionstamp(&t, &stamp).unwrap(),
            b"k-\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a-x".to_vec()
        );
        let mut bad = b"short".to_vec();
        bad.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            place_versionstamp(&bad, &stamp).unwrap_err().code(),
            KvError::CLIENT_INVALID_OPERATION
        );
        assert!(split_versionstamp_template(b"ab").is_err());
    }
}

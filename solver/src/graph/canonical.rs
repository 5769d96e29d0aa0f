//! Canonical JSON: object keys sorted bytewise, no whitespace, serde_json's number and string
//! encoding. The digest of a vertex is the sha256 of this encoding, so it must not depend on map
//! iteration order or on serde_json's `preserve_order` feature being switched on by another crate.

use serde::Serialize;
use serde_json::Value;

/// Serialises `value` canonically.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(256);
    write_value(&value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                if let Some(item) = map.get(*key) {
                    write_value(item, out)?;
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn keys_are_sorted_at_every_level() {
        let mut inner = HashMap::new();
        inner.insert("zeta", 1);
        inner.insert("alpha", 2);
        let mut outer = HashMap::new();
        outer.insert("b", serde_json::json!([inner, "x\"y"]));
        outer.insert("a", serde_json::json!(null));
        let text = String::from_utf8(to_canonical_json(&outer).expect("encode")).expect("utf8");
        assert_eq!(text, r#"{"a":null,"b":[{"alpha":2,"zeta":1},"x\"y"]}"#);
    }
}

//! Python's `json.dumps(value, sort_keys=True)`, byte for byte: the form
//! Deltaic wrote every JSON file of a github unit in, which strata must
//! reproduce so that its first run over a Deltaic root rewrites nothing.
//!
//! The rules (`CPython`'s `json` encoder with its defaults): `", "` between
//! items and `": "` after keys; keys sorted by code point; every character
//! outside printable ASCII (space to `~`) escaped, `\n` `\r` `\t` `\b` `\f`
//! `\"` `\\` by name, the rest as `\uXXXX` in lower-case hex, characters
//! beyond the BMP as a surrogate pair; integers as they are; floats as
//! Python's `repr` (`1.0`, `1e+16`, `1e-05`, `Infinity`, `NaN`); `true`,
//! `false`, `null`. Deltaic adds one newline at the end of each file
//! ([`to_file_bytes`]).

use serde_json::Value;
use std::fmt::Write as _;

/// `json.dumps(v, sort_keys=True)`.
#[must_use]
pub fn dumps(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

/// What Deltaic writes to a file: [`dumps`] and a newline.
#[must_use]
pub fn to_file_bytes(v: &Value) -> Vec<u8> {
    let mut s = dumps(v);
    s.push('\n');
    s.into_bytes()
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                out.push_str(&float_repr(n.as_f64().unwrap_or(f64::NAN)));
            }
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // why: Python sorts str keys by code point; UTF-8 byte order is the same order
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k);
                out.push_str(": ");
                write_value(out, &map[k.as_str()]);
            }
            out.push('}');
        }
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that round-trip, positional
/// when the decimal exponent is in `-4 < e <= 16`, else scientific with a
/// signed exponent of at least two digits.
#[must_use]
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // why: Rust's `{:e}` gives the shortest round-trip digits, as Python's repr does
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    // Python's decpt: the value is 0.DIGITS * 10^decpt
    let decpt = exp + 1;
    let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    if decpt <= -4 || decpt > 16 {
        let (first, rest) = digits.split_at(1);
        let mant = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mant}e{esign}{:02}", exp.abs());
    }
    if decpt <= 0 {
        let zeros = "0".repeat(usize::try_from(-decpt).unwrap_or(0));
        return format!("{sign}0.{zeros}{digits}");
    }
    if decpt >= n {
        let zeros = "0".repeat(usize::try_from(decpt - n).unwrap_or(0));
        return format!("{sign}{digits}{zeros}.0");
    }
    let (int, frac) = digits.split_at(usize::try_from(decpt).unwrap_or(0));
    format!("{sign}{int}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_sort_keys_and_use_python_separators() {
        let v = json!({"b": 1, "a": [true, false, null], "C": {"z": "x", "y": -2}});
        assert_eq!(
            dumps(&v),
            r#"{"C": {"y": -2, "z": "x"}, "a": [true, false, null], "b": 1}"#
        );
        assert_eq!(dumps(&json!([])), "[]");
        assert_eq!(dumps(&json!({})), "{}");
        assert_eq!(to_file_bytes(&json!({"a": 1})), b"{\"a\": 1}\n");
    }

    #[test]
    fn strings_escape_like_ensure_ascii() {
        // Expected values are what CPython 3.11 prints for json.dumps of the same string.
        let cases = [
            ("plain text ~", r#""plain text ~""#),
            ("quote \" back \\ slash", r#""quote \" back \\ slash""#),
            ("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#),
            ("\u{1}\u{1f}\u{7f}", r#""\u0001\u001f\u007f""#),
            ("é ü ß", r#""\u00e9 \u00fc \u00df""#),
            ("日本", r#""\u65e5\u672c""#),
            ("🦀 crab", r#""\ud83e\udd80 crab""#),
            ("\u{2028}", r#""\u2028""#),
            ("/ slash", r#""/ slash""#),
        ];
        for (input, want) in cases {
            assert_eq!(dumps(&json!(input)), want, "{input:?}");
        }
    }

    #[test]
    fn keys_sort_by_code_point() {
        let v = json!({"é": 1, "z": 2, "Z": 3, "🦀": 4, "\u{ff}": 5});
        assert_eq!(
            dumps(&v),
            r#"{"Z": 3, "z": 2, "\u00e9": 1, "\u00ff": 5, "\ud83e\udd80": 4}"#
        );
    }

    #[test]
    fn numbers_print_as_python_does() {
        // (value, repr(value) in CPython)
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-2.25, "-2.25"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (123_456_789_012_345_680.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e300, "1e+300"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (12.0, "12.0"),
            (1.234_567, "1.234567"),
        ];
        for (f, want) in cases {
            assert_eq!(float_repr(*f), *want, "{f:e}");
        }
        assert_eq!(dumps(&json!(12)), "12");
        assert_eq!(dumps(&json!(-7)), "-7");
        assert_eq!(dumps(&json!(u64::MAX)), "18446744073709551615");
        assert_eq!(dumps(&json!(2.5)), "2.5");
    }
}

//! Python `str()` / `repr()` emulation, for the body hash and Epistula headers
//! (docs/protocol.md §4).
//!
//! The axon hashes `str(messages)`, i.e. Python's repr of a `list[str]`: `['a', "it's"]`.
//! [`python_repr_str`] follows CPython's `unicode_repr`: it picks `'` unless the text holds `'`
//! and no `"`; escapes `\\`, the chosen quote, `\t`, `\n`, `\r`; writes other C0 controls and
//! DEL as `\xNN`; and writes non-printable non-ASCII as `\xNN` (≤ U+00FF), `\uNNNN`
//! (≤ U+FFFF) or `\UNNNNNNNN`. "Printable" is `str.isprintable()`: every character except the
//! general categories Cc, Cf, Cs, Co, Cn, Zl, Zp and Zs (but U+0020 SPACE is printable).
//!
//! Unicode version: CPython 3.11 (what the captured dendrite and axon ran) uses Unicode 14.0,
//! while the `unicode-general-category` crate uses Unicode 16.0. The 10 294 code points
//! assigned in 15.0–16.0 are `Cn` (so escaped) for Python 3.11; the `unicode14` table marks
//! them non-printable, and a test checks every code point against CPython 3.11.7. An axon on
//! Python 3.12/3.13 (Unicode 15.0/15.1) or 3.14 (16.0) prints some of them as is, so a message
//! holding such a recent character may hash differently there (→ 500 from that miner).
//!
//! Also: [`python_float_str`] (`str(float)`, e.g. `12.0`, `1e-05`) and [`python_str_json`]
//! (`str()` of a JSON-decoded value: dicts, lists, `True`/`False`/`None`).

use std::fmt::Write as _;

use unicode_general_category::{GeneralCategory, get_general_category};

mod unicode14;

/// Whether Python 3.11's `str.isprintable()` is true for this one character.
pub fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if unicode14::assigned_after_unicode14(c) {
        return false;
    }
    !matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::SpaceSeparator
    )
}

/// Appends Python's `repr(s)` to `out`.
fn push_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_ascii() => out.push(c),
            c if is_printable(c) => out.push(c),
            c => {
                let cp = c as u32;
                let _ = if cp <= 0xff {
                    write!(out, "\\x{cp:02x}")
                } else if cp <= 0xffff {
                    write!(out, "\\u{cp:04x}")
                } else {
                    write!(out, "\\U{cp:08x}")
                };
            }
        }
    }
    out.push(quote);
}

/// Python's `repr(s)` of a `str`, e.g. `'a'`, `"it's"`, `'both \' and "'`, `'nbsp\xa0'`.
pub fn python_repr_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_repr(&mut out, s);
    out
}

/// Python's `str(items)` of a `list[str]`: `['a', 'b']` (`[]` when empty).
pub fn python_str_list(items: &[String]) -> String {
    let mut out = String::with_capacity(2 + items.iter().map(|s| s.len() + 4).sum::<usize>());
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_repr(&mut out, item);
    }
    out.push(']');
    out
}

/// Python's `str(x)` / `repr(x)` of a float: the shortest text that reads back to `x`, in
/// fixed notation with at least one decimal (`12.0`, `0.0001`) when the decimal exponent is in
/// `-4 ..< 16`, else scientific with a signed two-digit-minimum exponent (`1e-05`, `1e+16`).
pub fn python_float_str(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.2345e-7".
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let n = digits.len() as i32;
    // Position of the decimal point relative to the start of `digits` (CPython's `decpt`).
    let decpt = exp + 1;
    let mut out = String::from(sign);
    if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-decpt) as usize));
            out.push_str(&digits);
        } else if decpt >= n {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (decpt - n) as usize));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = decpt - 1;
        let _ = write!(out, "e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    out
}

/// A float as Python's `json.dumps` writes it: like `repr`, but `NaN`, `Infinity`, `-Infinity`.
pub fn python_json_float(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }
    } else {
        python_float_str(x)
    }
}

/// Python's `str(v)` of a value decoded by `json.loads`: strings as is, `True`/`False`/`None`,
/// ints, floats as [`python_float_str`], lists and dicts as their repr (`{'a': 1, 'b': [True]}`).
pub fn python_str_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => {
            let mut out = String::new();
            push_json_repr(&mut out, other);
            out
        }
    }
}

fn push_json_repr(out: &mut String, v: &serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                out.push_str(&python_float_str(n.as_f64().unwrap_or(f64::NAN)));
            }
        }
        Value::String(s) => push_repr(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_json_repr(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_repr(out, k);
                out.push_str(": ");
                push_json_repr(out, item);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_quotes_and_escapes() {
        assert_eq!(python_repr_str("a"), "'a'");
        assert_eq!(python_repr_str("it's"), "\"it's\"");
        assert_eq!(python_repr_str("both ' and \""), "'both \\' and \"'");
        assert_eq!(
            python_repr_str("\u{0}\u{7f}\u{85}\u{a0}"),
            "'\\x00\\x7f\\x85\\xa0'"
        );
        assert_eq!(
            python_repr_str("\u{200b}\u{1f600}\u{e000}"),
            "'\\u200b\u{1f600}\\ue000'"
        );
        assert_eq!(python_repr_str("\u{f0000}"), "'\\U000f0000'");
        assert_eq!(python_str_list(&[]), "[]");
    }

    #[test]
    fn isprintable_matches_python_3_11_on_every_code_point() {
        // CPython 3.11.7: bytes(chr(cp).isprintable() for every non-surrogate cp), sha256.
        use sha2::{Digest, Sha256};
        let flags: Vec<u8> = (0..0x11_0000u32)
            .filter_map(char::from_u32)
            .map(|c| u8::from(is_printable(c)))
            .collect();
        let count: usize = flags.iter().map(|&b| usize::from(b)).sum();
        assert_eq!(count, 144_516);
        assert_eq!(
            hex::encode(Sha256::digest(&flags)),
            "d35af14b1f8ed4ab975f5086bf4fbbee8f32e282bdb2c0009fce68dc03253494"
        );
    }

    #[test]
    fn floats_like_python() {
        for (x, want) in [
            (12.0, "12.0"),
            (1.0, "1.0"),
            (0.5, "0.5"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (1732000010000.0, "1732000010000.0"),
            (1732000009999.0, "1732000009999.0"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (-2.5e-7, "-2.5e-07"),
            (0.1 + 0.2, "0.30000000000000004"),
            (5.53131103515625e-05, "5.53131103515625e-05"),
            (1.5e300, "1.5e+300"),
            (-0.0, "-0.0"),
        ] {
            assert_eq!(python_float_str(x), want, "{x}");
        }
    }

    #[test]
    fn json_values_like_python_str() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"a": [1, 2.5, true, null, "x'y"], "b": {"c": false}}"#)
                .unwrap();
        // serde_json's default map is sorted; for this input that is also insertion order.
        assert_eq!(
            python_str_json(&v),
            "{'a': [1, 2.5, True, None, \"x'y\"], 'b': {'c': False}}"
        );
        assert_eq!(python_str_json(&serde_json::json!("plain")), "plain");
        assert_eq!(python_str_json(&serde_json::json!(0.7)), "0.7");
        assert_eq!(python_json_float(f64::NAN), "NaN");
        assert_eq!(python_json_float(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(python_json_float(2.0), "2.0");
    }
}

//! `Synapse.from_headers` as the axon's preprocess step runs it: which headers it reads, and
//! which values make pydantic fail (→ 500 in the caller).
//!
//! Names are matched case-insensitively and, like the Python code, by substring:
//! `"bt_header_dendrite_" in key`, `"bt_header_axon_" in key`, `"bt_header_input_obj" in key`.
//! For the dendrite/axon fields a later header wins; for input objects the first one wins;
//! plain `timeout`, `header_size`, `total_size` and `computed_body_hash` take the first.

use base64::Engine as _;

/// The header fields the verifier needs, already type-checked.
#[derive(Debug, Default)]
pub(super) struct SynapseHeaders {
    /// `timeout` (None when absent).
    pub timeout: Option<f64>,
    /// `computed_body_hash` (None when absent).
    pub computed_body_hash: Option<String>,
    /// `bt_header_dendrite_version`.
    pub version: Option<i128>,
    /// `bt_header_dendrite_nonce`.
    pub nonce: Option<i128>,
    /// `bt_header_dendrite_uuid`.
    pub uuid: Option<String>,
    /// `bt_header_dendrite_hotkey`.
    pub hotkey: Option<String>,
    /// `bt_header_dendrite_signature`.
    pub signature: Option<String>,
}

/// Parses an integer the way pydantic's lax mode reads one from a string.
fn py_int(value: &str) -> Result<i128, ()> {
    let t = value.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || t.len() > 38 {
        return Err(());
    }
    t.parse::<i128>().map_err(|_| ())
}

/// Parses a float the way pydantic's lax mode reads one from a string.
fn py_float(value: &str) -> Result<f64, ()> {
    value.trim().parse::<f64>().map_err(|_| ())
}

/// Type-checks one TerminalInfo field given as a header (the int and float fields).
fn check_terminal_field(field: &str, value: &str) -> Result<(), ()> {
    match field {
        "status_code" | "port" | "version" | "nonce" => py_int(value).map(drop),
        "process_time" => py_float(value).map(drop),
        _ => Ok(()),
    }
}

/// Decodes a `bt_header_input_obj_*` value: `json.loads(base64.b64decode(value))`.
fn decode_input_obj(value: &str) -> Option<serde_json::Value> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn is_str_list(v: &serde_json::Value) -> bool {
    v.as_array()
        .is_some_and(|a| a.iter().all(|x| x.is_string()))
}

/// Builds the synapse from the headers; `Err(())` wherever `from_headers` would raise.
/// `stream`: the StreamPromptingSynapse needs `roles` and `messages` input objects;
/// `task_name`: it also needs `task_name` (the v2.8–v2.12.1 class).
pub(super) fn parse_headers(
    headers: &[(String, String)],
    stream: bool,
    task_name: bool,
) -> Result<SynapseHeaders, ()> {
    let mut out = SynapseHeaders::default();
    let mut inputs: Vec<(String, serde_json::Value)> = Vec::new();
    let first = |slot: &mut Option<String>, value: &str| {
        if slot.is_none() {
            *slot = Some(value.to_string());
        }
    };
    let mut timeout: Option<String> = None;
    let mut header_size: Option<String> = None;
    let mut total_size: Option<String> = None;
    let mut body_hash: Option<String> = None;
    for (raw_name, value) in headers {
        let name = raw_name.to_ascii_lowercase();
        if let Some(field) = name.split("bt_header_axon_").nth(1) {
            check_terminal_field(field, value)?;
        } else if let Some(field) = name.split("bt_header_dendrite_").nth(1) {
            check_terminal_field(field, value)?;
            match field {
                "version" => out.version = Some(py_int(value)?),
                "nonce" => out.nonce = Some(py_int(value)?),
                "uuid" => out.uuid = Some(value.clone()),
                "hotkey" => out.hotkey = Some(value.clone()),
                "signature" => out.signature = Some(value.clone()),
                _ => {}
            }
        } else if let Some(field) = name.split("bt_header_input_obj_").nth(1) {
            if !inputs.iter().any(|(k, _)| k == field) {
                // A value that does not decode is logged and skipped by the real code.
                if let Some(v) = decode_input_obj(value) {
                    inputs.push((field.to_string(), v));
                }
            }
        } else {
            match name.as_str() {
                "timeout" => first(&mut timeout, value),
                "header_size" => first(&mut header_size, value),
                "total_size" => first(&mut total_size, value),
                "computed_body_hash" => first(&mut body_hash, value),
                _ => {}
            }
        }
    }
    if let Some(t) = timeout {
        out.timeout = Some(py_float(&t)?);
    }
    for size in [header_size, total_size].into_iter().flatten() {
        py_int(&size)?;
    }
    out.computed_body_hash = body_hash;

    let input = |key: &str| inputs.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    if stream {
        for key in ["roles", "messages"] {
            if !input(key).is_some_and(is_str_list) {
                return Err(());
            }
        }
        if task_name && !input("task_name").is_some_and(serde_json::Value::is_string) {
            return Err(());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_fields_any_case() {
        let parsed = parse_headers(
            &h(&[
                ("Timeout", "12.0"),
                ("BT_HEADER_DENDRITE_NONCE", "17"),
                ("bt_header_dendrite_version", "10005000"),
                ("bt_header_input_obj_roles", "W10="),
                ("bt_header_input_obj_messages", "W10="),
            ]),
            true,
            false,
        )
        .unwrap();
        assert_eq!(parsed.timeout, Some(12.0));
        assert_eq!(parsed.nonce, Some(17));
        assert_eq!(parsed.version, Some(10005000));
    }

    #[test]
    fn rejects_what_pydantic_rejects() {
        let base = [
            ("bt_header_input_obj_roles", "W10="),
            ("bt_header_input_obj_messages", "W10="),
        ];
        assert!(
            parse_headers(&h(&base), true, true).is_err(),
            "task_name missing"
        );
        assert!(
            parse_headers(&h(&base[..1]), true, false).is_err(),
            "messages missing"
        );
        let mut bad = base.to_vec();
        bad.push(("bt_header_dendrite_nonce", "abc"));
        assert!(parse_headers(&h(&bad), true, false).is_err());
        let mut bad = base.to_vec();
        bad.push(("timeout", "soon"));
        assert!(parse_headers(&h(&bad), true, false).is_err());
        let wrong_type = [
            ("bt_header_input_obj_roles", "IiI="),
            ("bt_header_input_obj_messages", "W10="),
        ];
        assert!(parse_headers(&h(&wrong_type), true, false).is_err());
        assert!(
            parse_headers(&[], false, false).is_ok(),
            "ping needs nothing"
        );
    }
}

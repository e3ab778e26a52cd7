//! Building the HTTP request of a query: the signed synapse request (headers and body from
//! [`crate::synapse::build_request`]) or the OpenAI chat body with the Epistula headers.

use super::{Deadline, Dendrite, MinerTarget, Prompt, Sampling};
use crate::epistula;
use crate::synapse::{self, AxonTarget, DendriteIdentity, SynapseShape};
use std::time::Duration;

impl Dendrite {
    pub(super) fn synapse_request(
        &self,
        target: &MinerTarget,
        prompt: &Prompt,
        shape: &SynapseShape,
        uuid: &str,
        timeout: Duration,
    ) -> Result<reqwest::Request, String> {
        let identity = DendriteIdentity {
            hotkey: &self.inner.hotkey,
            uuid,
            external_ip: &self.inner.external_ip,
            version: synapse::DENDRITE_VERSION,
        };
        let axon = AxonTarget {
            ip: target.ip.clone(),
            port: target.port,
            hotkey: target.hotkey.clone(),
        };
        let shape = match (shape, prompt.seed) {
            (
                SynapseShape::V212 {
                    task_name,
                    target_model,
                    seed: None,
                },
                Some(seed),
            ) => SynapseShape::V212 {
                task_name: task_name.clone(),
                target_model: target_model.clone(),
                seed: Some(seed),
            },
            (shape, _) => shape.clone(),
        };
        let roles = roles_for(prompt);
        let nonce = self.inner.nonces.next();
        let req = synapse::build_request(
            &identity,
            &axon,
            &shape,
            &roles,
            &prompt.messages,
            timeout.as_secs_f64(),
            nonce,
        );
        let url = axon_url(&target.ip, target.port, &req.path)?;
        let mut builder = self.inner.client.post(url);
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
            .body(req.body)
            .build()
            .map_err(|e| format!("could not build the synapse request: {e}"))
    }

    pub(super) fn chat_request(
        &self,
        target: &MinerTarget,
        prompt: &Prompt,
        signed: bool,
        timeout: Duration,
    ) -> Result<reqwest::Request, String> {
        let roles = roles_for(prompt);
        let timeout_secs = timeout.as_secs_f64();
        let body = ChatBody {
            model: self.inner.model.as_deref(),
            messages: roles
                .iter()
                .zip(&prompt.messages)
                .map(|(role, content)| ChatMessage { role, content })
                .collect(),
            stream: true,
            seed: prompt.seed,
            sampling: &prompt.sampling,
            // A plain OpenAI server rejects unknown body fields; SN1 miners read `timeout`.
            timeout: signed.then_some(timeout_secs),
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| format!("could not encode the chat request: {e}"))?;
        let url = axon_url(&target.ip, target.port, CHAT_PATH)?;
        let mut builder = self
            .inner
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .header("Authorization", "Bearer Apex");
        if signed {
            let uuid = uuid::Uuid::new_v4().to_string();
            let now_ms = unix_ms();
            let headers = epistula::sign_request(
                &self.inner.hotkey,
                &body,
                Some(&target.hotkey),
                now_ms,
                &uuid,
            );
            for (name, value) in &headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            // SN1's header hook copies every body field but messages/model/stream into a header
            // holding its Python `str()`.
            for (name, value) in epistula::body_field_headers(&body) {
                builder = builder.header(name, value);
            }
            builder = builder.header("X-Client-Timeout", python_number(timeout_secs));
        } else {
            builder = builder.header("X-Client-Timeout", python_number(timeout_secs));
        }
        builder
            .body(body)
            .build()
            .map_err(|e| format!("could not build the chat request: {e}"))
    }
}

/// The OpenAI chat completions path served by Epistula miners.
pub const CHAT_PATH: &str = "/v1/chat/completions";

#[derive(serde::Serialize)]
struct ChatBody<'a> {
    model: Option<&'a str>,
    messages: Vec<ChatMessage<'a>>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(flatten)]
    sampling: &'a Sampling,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<f64>,
}

#[derive(serde::Serialize)]
struct ChatMessage<'a> {
    role: &'a str,
    content: &'a str,
}

fn roles_for(prompt: &Prompt) -> Vec<String> {
    (0..prompt.messages.len())
        .map(|i| {
            prompt
                .roles
                .get(i)
                .cloned()
                .unwrap_or_else(|| "user".to_owned())
        })
        .collect()
}

/// `http://{ip}:{port}{path}`, with an IPv6 ip in brackets (see the module docs).
pub fn axon_url(ip: &str, port: u16, path: &str) -> Result<reqwest::Url, String> {
    let host = if ip.contains(':') && !ip.starts_with('[') {
        format!("[{ip}]")
    } else {
        ip.to_owned()
    };
    reqwest::Url::parse(&format!("http://{host}:{port}{path}"))
        .map_err(|e| format!("invalid axon address {ip}:{port}: {e}"))
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The timeout told to a miner: the time left until `deadline`, rounded up to the millisecond,
/// so a query made with a 12 s budget tells the miner `12` (as bittensor does), not `11.99998`.
pub(super) fn timeout_told(deadline: Deadline) -> Duration {
    let ms = deadline.remaining().as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// A whole number of seconds as an int (`12`, as SN1 sends it), anything else as a float.
fn python_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hosts_get_brackets_and_ipv4_does_not() {
        assert_eq!(
            axon_url("::1", 8091, "/StreamPromptingSynapse")
                .unwrap()
                .as_str(),
            "http://[::1]:8091/StreamPromptingSynapse"
        );
        assert_eq!(
            axon_url("2001:db8::7", 1, CHAT_PATH).unwrap().as_str(),
            "http://[2001:db8::7]:1/v1/chat/completions"
        );
        assert_eq!(
            axon_url("10.0.0.1", 8091, "/x").unwrap().as_str(),
            "http://10.0.0.1:8091/x"
        );
        assert!(axon_url("not an ip", 1, "/x").is_err());
    }

    #[test]
    fn the_timeout_told_is_the_time_left_rounded_up_to_the_millisecond() {
        let deadline = Deadline::after(Duration::from_secs(12));
        assert_eq!(timeout_told(deadline), Duration::from_secs(12));
        let passed = Deadline::at(tokio::time::Instant::now() - Duration::from_millis(5));
        assert_eq!(timeout_told(passed), Duration::ZERO);
    }

    #[test]
    fn python_number_formatting() {
        assert_eq!(python_number(12.0), "12");
        assert_eq!(python_number(0.5), "0.5");
    }

    #[test]
    fn sampling_parameters_go_in_the_body_only_when_set() {
        let body = |sampling: &Sampling| {
            serde_json::to_value(ChatBody {
                model: None,
                messages: vec![],
                stream: true,
                seed: Some(7),
                sampling,
                timeout: None,
            })
            .unwrap()
        };
        let none = body(&Sampling::default());
        assert_eq!(
            none,
            serde_json::json!({"model": null, "messages": [], "stream": true, "seed": 7})
        );
        let set = body(&Sampling {
            temperature: Some(0.5),
            top_p: Some(0.9),
            max_tokens: Some(64),
            stop: vec!["\n".into()],
        });
        assert_eq!(set["temperature"], 0.5);
        assert_eq!(set["top_p"], 0.9);
        assert_eq!(set["max_tokens"], 64);
        assert_eq!(set["stop"], serde_json::json!(["\n"]));
    }

    #[test]
    fn missing_roles_default_to_user() {
        let prompt = Prompt {
            roles: vec!["system".into()],
            messages: vec!["a".into(), "b".into()],
            seed: None,
            sampling: Sampling::default(),
        };
        assert_eq!(roles_for(&prompt), vec!["system", "user"]);
    }
}

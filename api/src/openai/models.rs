//! The models a deployment serves: each id a named routing profile (subnet, miner protocol,
//! default `k`, strategy and sampling mode). Configured with `MODELS` (a JSON list of
//! profiles); the default is one model, `sn1`.
//!
//! Every profile is served by the same workers: `netuid` and `protocol` describe what those
//! workers are configured with (`NETUID`, `MINER_PROTOCOL`) for clients listing the models; the
//! defaults (`k`, `strategy`, `sampling_mode`) are applied to the requests that name the model.

use serde::{Deserialize, Serialize};
use sn1_contracts::job::{SamplingMode, Strategy};
use utoipa::ToSchema;

/// One model id and how its requests are routed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelProfile {
    /// The id clients put in `model`.
    pub id: String,
    /// The subnet its miners are on.
    #[serde(default = "default_netuid")]
    pub netuid: u16,
    /// The protocol its miners speak (`classic`, `v2.12`, `epistula`, `openai`), as the
    /// workers' `MINER_PROTOCOL` says.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Miners asked per request unless `sn1.k` says otherwise.
    #[serde(default = "default_k")]
    #[schema(minimum = 1)]
    pub k: u16,
    /// How the answer is chosen unless `sn1.strategy` says otherwise.
    #[serde(default)]
    #[schema(value_type = String, example = "first")]
    pub strategy: Strategy,
    /// How miners are chosen unless `sn1.sampling_mode` says otherwise (default `reliable`).
    #[serde(default = "default_sampling")]
    #[schema(value_type = String, example = "reliable")]
    pub sampling_mode: SamplingMode,
}

fn default_netuid() -> u16 {
    1
}

fn default_protocol() -> String {
    "classic".into()
}

fn default_k() -> u16 {
    10
}

fn default_sampling() -> SamplingMode {
    SamplingMode::Reliable
}

/// The configured models, in order; never empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Models(Vec<ModelProfile>);

impl Default for Models {
    /// One model, `sn1`: subnet 1, k = 10, the first usable answer, reliable miners.
    fn default() -> Self {
        Models(vec![ModelProfile {
            id: "sn1".into(),
            netuid: default_netuid(),
            protocol: default_protocol(),
            k: default_k(),
            strategy: Strategy::First,
            sampling_mode: default_sampling(),
        }])
    }
}

impl Models {
    /// Parses `MODELS`: a JSON list of profiles, e.g.
    /// `[{"id": "sn1", "k": 10}, {"id": "sn1-best", "k": 20, "strategy": "longest"}]`.
    /// Ids must be unique and non-empty, `k` from 1 to `max_k`.
    pub fn parse(json: &str, max_k: u16) -> Result<Models, String> {
        let profiles: Vec<ModelProfile> = serde_json::from_str(json)
            .map_err(|e| format!("MODELS is not a list of models: {e}"))?;
        if profiles.is_empty() {
            return Err("MODELS must name at least one model".into());
        }
        for (i, p) in profiles.iter().enumerate() {
            if p.id.trim().is_empty() {
                return Err(format!("MODELS[{i}]: the id is empty"));
            }
            if profiles[..i].iter().any(|q| q.id == p.id) {
                return Err(format!("MODELS: the id {:?} appears twice", p.id));
            }
            if p.k == 0 || p.k > max_k {
                return Err(format!(
                    "MODELS[{i}] ({}): k must be from 1 to {max_k}",
                    p.id
                ));
            }
        }
        Ok(Models(profiles))
    }

    /// The profile of `id`.
    pub fn get(&self, id: &str) -> Option<&ModelProfile> {
        self.0.iter().find(|p| p.id == id)
    }

    /// Every profile, in configured order.
    pub fn all(&self) -> &[ModelProfile] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_one_model_sn1() {
        let models = Models::default();
        assert_eq!(models.all().len(), 1);
        assert_eq!(models.get("sn1").unwrap().k, 10);
        assert!(models.get("gpt-4").is_none());
    }

    #[test]
    fn models_parse_with_defaults_and_are_checked() {
        let m = Models::parse(
            r#"[{"id":"a"},{"id":"b","k":3,"strategy":"longest","sampling_mode":"top_incentive","protocol":"epistula","netuid":61}]"#,
            256,
        )
        .unwrap();
        assert_eq!(m.get("a").unwrap().k, 10);
        assert_eq!(m.get("a").unwrap().sampling_mode, SamplingMode::Reliable);
        let b = m.get("b").unwrap();
        assert_eq!((b.k, b.strategy, b.netuid), (3, Strategy::Longest, 61));
        assert_eq!(b.sampling_mode, SamplingMode::TopIncentive);
        for bad in [
            "[]",
            "{}",
            r#"[{"id":""}]"#,
            r#"[{"id":"a"},{"id":"a"}]"#,
            r#"[{"id":"a","k":0}]"#,
            r#"[{"id":"a","k":300}]"#,
            r#"[{"id":"a","colour":"red"}]"#,
        ] {
            assert!(Models::parse(bad, 256).is_err(), "{bad}");
        }
    }
}

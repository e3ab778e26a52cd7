//! The Subtensor JSON-RPC calls the syncer makes, over subxt's RPC client (`subxt-rpcs`, the
//! RPC layer of subxt 0.51, on jsonrpsee's WebSocket client): `chain_getFinalizedHead`,
//! `chain_getHeader` and `state_call` — no metadata download. `ws://` and `wss://` both work
//! (TLS by rustls with ring and the platform's root certificates).

use sn1_telemetry::redact_url;
use std::time::Duration;
use subxt_rpcs::client::{RpcClient, rpc_params};

/// A Subtensor call that failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The node could not be reached or the connection failed.
    #[error("cannot connect to the chain at {url}: {message}")]
    Connect {
        /// The endpoint, without path or credentials.
        url: String,
        /// Why.
        message: String,
    },
    /// A call failed or the connection dropped.
    #[error("{method} failed: {message}")]
    Call {
        /// The JSON-RPC method.
        method: &'static str,
        /// Why.
        message: String,
    },
    /// A call took too long.
    #[error("{method} did not answer within {timeout:?}")]
    Timeout {
        /// The JSON-RPC method.
        method: &'static str,
        /// The limit.
        timeout: Duration,
    },
    /// The node answered something that is not what the method returns.
    #[error("{method} returned an unexpected answer: {message}")]
    BadAnswer {
        /// The JSON-RPC method.
        method: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A finalized block: its number and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRef {
    /// Block number.
    pub number: u64,
    /// Block hash, `0x`-hex.
    pub hash: String,
}

/// A connection to one Subtensor node.
pub struct ChainClient {
    rpc: RpcClient,
    timeout: Duration,
}

fn is_hash(text: &str) -> bool {
    text.len() == 66 && text.starts_with("0x") && text[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

impl ChainClient {
    /// Connects to `url` (`ws://` or `wss://`); every call is bounded by `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<ChainClient, RpcError> {
        let shown = redact_url(url);
        let connect = async {
            if url.starts_with("wss://") {
                RpcClient::from_url(url).await
            } else {
                // ws:// (local nodes, the fake chain): subxt refuses it in `from_url`.
                RpcClient::from_insecure_url(url).await
            }
        };
        let rpc = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| RpcError::Connect {
                url: shown.clone(),
                message: format!("no connection within {timeout:?}"),
            })?
            .map_err(|e| RpcError::Connect {
                url: shown,
                message: e.to_string(),
            })?;
        Ok(ChainClient { rpc, timeout })
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &'static str,
        params: subxt_rpcs::client::RpcParams,
    ) -> Result<T, RpcError> {
        tokio::time::timeout(self.timeout, self.rpc.request(method, params))
            .await
            .map_err(|_| RpcError::Timeout {
                method,
                timeout: self.timeout,
            })?
            .map_err(|e| RpcError::Call {
                method,
                message: e.to_string(),
            })
    }

    /// The finalized head: `chain_getFinalizedHead`, then `chain_getHeader` for its number.
    pub async fn finalized_head(&self) -> Result<BlockRef, RpcError> {
        let hash: String = self.call("chain_getFinalizedHead", rpc_params![]).await?;
        if !is_hash(&hash) {
            return Err(RpcError::BadAnswer {
                method: "chain_getFinalizedHead",
                message: "not a 0x-prefixed 32-byte hash".into(),
            });
        }
        let header: serde_json::Value = self
            .call("chain_getHeader", rpc_params![hash.clone()])
            .await?;
        let bad = |message: &str| RpcError::BadAnswer {
            method: "chain_getHeader",
            message: message.into(),
        };
        let number = header
            .get("number")
            .and_then(|n| n.as_str())
            .ok_or_else(|| bad("no `number` field"))?;
        let digits = number
            .strip_prefix("0x")
            .ok_or_else(|| bad("`number` is not 0x-hex"))?;
        let number =
            u64::from_str_radix(digits, 16).map_err(|_| bad("`number` is not a hex u64"))?;
        Ok(BlockRef { number, hash })
    }

    /// `state_call(method, params, at)`: the SCALE bytes of a runtime-API answer. `params` are
    /// sent as hex without `0x`, like the bittensor v10 SDK.
    pub async fn state_call(
        &self,
        method: &'static str,
        params: &[u8],
        at: &str,
    ) -> Result<Vec<u8>, RpcError> {
        let result: String = self
            .call(
                "state_call",
                rpc_params![method, hex::encode(params), at.to_string()],
            )
            .await?;
        sn1_bittensor::metagraph::hex_result(&result).map_err(|e| RpcError::BadAnswer {
            method: "state_call",
            message: format!("{method}: {e}"),
        })
    }
}

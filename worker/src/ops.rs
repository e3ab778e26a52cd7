//! The worker's readiness for the shared operations endpoints ([`sn1_telemetry::ops`]):
//! ready while the bus is connected and a non-empty metagraph is loaded.

use crate::directory::Directory;
use serde_json::json;
use sn1_contracts::bus::Bus;
use sn1_telemetry::ops::Probe;

/// What `/readyz` of a worker checks.
#[derive(Clone)]
pub struct WorkerProbe {
    /// The worker's bus.
    pub bus: Bus,
    /// The worker's metagraph.
    pub directory: Directory,
}

impl Probe for WorkerProbe {
    async fn readiness(&self) -> (bool, serde_json::Value) {
        let neurons = self.directory.snapshot().neurons.len();
        let nats = self.bus.is_connected();
        (
            nats && neurons > 0,
            json!({"nats": nats, "neurons": neurons}),
        )
    }
}

//! Messages handed to a consumer that must say what became of them: a job (to a worker) and an
//! audit record (to the audit writer). Both answer through one [`Acker`]: JetStream acks for the
//! NATS bus, nothing for the in-process bus (it hands a message over once).

use super::BusError;
use super::headers::Headers;
use crate::audit::CompletionRecord;
use crate::job::ChatJob;
use std::time::Duration;

/// What the consumer says of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ack {
    /// Handled: forget it.
    Done,
    /// Still working: reset the redelivery timer.
    Progress,
    /// Not now: redeliver after this delay.
    Retry(Duration),
    /// Never redeliver (garbage, or refused for good).
    Drop,
}

/// Where acks go.
pub(crate) enum Acker {
    /// A JetStream message.
    Nats(Box<super::nats::JetStreamMessage>),
    /// The in-process bus: nothing to tell.
    Memory,
}

impl Acker {
    async fn send(&self, ack: Ack) -> Result<(), BusError> {
        match self {
            Acker::Nats(msg) => super::nats::ack(msg, ack).await,
            Acker::Memory => Ok(()),
        }
    }
}

/// A job handed to this worker, to be acked once handled.
pub struct JobDelivery {
    /// The job.
    pub job: ChatJob,
    /// 1 on first delivery, more on redelivery.
    pub delivered: i64,
    /// The message headers (trace context).
    pub headers: Headers,
    pub(crate) acker: Acker,
}

impl JobDelivery {
    /// Done with the job: the queue forgets it.
    pub async fn ack(&self) -> Result<(), BusError> {
        self.acker.send(Ack::Done).await
    }

    /// Still working: resets the broker's redelivery timer.
    pub async fn in_progress(&self) -> Result<(), BusError> {
        self.acker.send(Ack::Progress).await
    }

    /// Could not handle it now: redeliver (to any worker) after `delay`.
    pub async fn nak(&self, delay: Duration) -> Result<(), BusError> {
        self.acker.send(Ack::Retry(delay)).await
    }
}

/// One delivered audit record (or an undecodable message, which is dropped when acked).
pub struct AuditDelivery {
    /// The record, `None` when the message was not a valid record.
    pub record: Option<CompletionRecord>,
    /// Its size on the queue, bytes (what a batch's byte cap counts).
    pub size: usize,
    pub(crate) acker: Acker,
}

impl AuditDelivery {
    /// The record is stored: forget it (garbage is dropped for good).
    pub async fn ack(&self) -> Result<(), BusError> {
        let ack = match self.record {
            Some(_) => Ack::Done,
            None => Ack::Drop,
        };
        self.acker.send(ack).await
    }

    /// Gives up on the record for good (the store refuses it): never redelivered.
    pub async fn term(&self) -> Result<(), BusError> {
        self.acker.send(Ack::Drop).await
    }

    /// Still being worked on (resets the redelivery timer).
    pub async fn in_progress(&self) -> Result<(), BusError> {
        self.acker.send(Ack::Progress).await
    }

    /// Asks for redelivery after `delay`.
    pub async fn nak(&self, delay: Duration) -> Result<(), BusError> {
        self.acker.send(Ack::Retry(delay)).await
    }
}

//! JSON log lines that name their trace: tracing-subscriber's JSON line plus `trace_id` and
//! `span_id` of the current span (W3C hex, as collectors show them), so a log line finds its
//! trace and a trace its log lines.

use opentelemetry::trace::TraceContextExt;
use std::sync::{Arc, OnceLock};
use tracing::dispatcher::WeakDispatch;
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;

/// The dispatcher the spans live in, learnt when the subscriber is built (an event being
/// formatted cannot ask for the current dispatcher: tracing hands out none while it dispatches).
type Slot = Arc<OnceLock<WeakDispatch>>;

/// The JSON line format with trace ids.
pub(crate) struct JsonWithTrace {
    inner: Format<Json>,
    dispatch: Slot,
}

/// A layer that only records the dispatcher for [`JsonWithTrace`].
pub(crate) struct DispatchSlot(Slot);

impl<S: Subscriber> Layer<S> for DispatchSlot {
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let _ = self.0.set(subscriber.downgrade());
    }
}

/// The formatter and the layer that feeds it; both go into the subscriber.
pub(crate) fn json_with_trace() -> (JsonWithTrace, DispatchSlot) {
    let slot = Slot::default();
    let format = JsonWithTrace {
        inner: tracing_subscriber::fmt::format().json(),
        dispatch: slot.clone(),
    };
    (format, DispatchSlot(slot))
}

impl<S> FormatEvent<S, JsonFields> for JsonWithTrace
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let ids = ctx.lookup_current().and_then(|span| self.ids(&span.id()));
        match (ids, line.strip_suffix("}\n")) {
            (Some((trace, span)), Some(head)) => {
                writer.write_str(head)?;
                write!(writer, ",\"trace_id\":\"{trace}\",\"span_id\":\"{span}\"}}")?;
                writeln!(writer)
            }
            _ => writer.write_str(&line),
        }
    }
}

impl JsonWithTrace {
    fn ids(&self, id: &tracing::span::Id) -> Option<(String, String)> {
        let dispatch = self.dispatch.get()?.upgrade()?;
        let cx = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
        let span = cx.span();
        let sc = span.span_context();
        sc.is_valid()
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    }
}

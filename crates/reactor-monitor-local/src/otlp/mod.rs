//! A local OTLP/HTTP trace receiver on 127.0.0.1: what an ADOT collector or Jaeger would
//! receive, kept in memory so that a run can show its unique flows from the spans themselves.
//! The receiver (`receiver`) keeps what it is sent; `flows` reads the unique flows from it.

mod flows;
mod receiver;

pub use flows::{TraceFlowRow, unique_flows};
pub use receiver::{FORWARD_ENV, OtlpReceiver, ReceivedSpan};

//! Pure domain: what a reading is, when it is rejected, how hot is too hot.

pub mod episode;
mod flow;
mod reading;
pub mod rfc3339;
mod sequence;
mod thresholds;

pub use flow::FlowType;
pub use reading::{
    Field, MAX_REACTOR_ID_CHARS, MAX_UTC_YEAR, MIN_UTC_YEAR, Reading, RejectReason, Rejection,
    UTC_TIMESTAMP_LEN,
};
pub use sequence::{NotASequenceNumber, SequenceNumber};
pub use thresholds::{Severity, Thresholds, ThresholdsError};

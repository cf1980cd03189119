//! Telemetry: the names every dashboard, alarm and test relies on, JSON logs, CloudWatch
//! embedded-metric-format lines, and OpenTelemetry traces per record.

pub mod emf;
pub mod function;
mod logs;
pub mod names;
pub mod propagation;
pub mod trace_plan;
pub mod traces;

pub use logs::{init_cli_logs, init_logs, log_batch};

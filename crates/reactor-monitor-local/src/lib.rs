//! The local stack: an AWS emulator on 127.0.0.1, the resources of the template, a
//! producer, an emulated event source mapping driving the same handler that ships, and a
//! read-back that proves nothing was lost.

pub mod collector;
pub mod commands;
pub mod emulator;
pub mod esm;
pub mod faults;
pub mod generate;
pub mod jaeger;
pub mod kpl;
pub mod metrics;
pub mod on_call;
pub mod otlp;
pub mod process;
pub mod report;
pub mod resources;
pub mod run;
pub mod scenario;
pub mod summary;
#[cfg(feature = "testing")]
pub mod testing;
pub mod up;
pub mod verify;

/// The project's root (the workspace this crate is built in), where `.venv`, the scripts, the
/// templates and `events/` live.
pub fn project_root() -> &'static std::path::Path {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

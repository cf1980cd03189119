//! The local stack: an AWS emulator on 127.0.0.1, the resources of the template, a
//! producer, an emulated event source mapping driving the same handler that ships, and a
//! read-back that proves nothing was lost.

pub mod commands;
pub mod emulator;
pub mod esm;
pub mod faults;
pub mod generate;
pub mod otlp;
pub mod report;
pub mod resources;
pub mod run;
pub mod summary;
pub mod up;
pub mod verify;

//! The whole stack on this machine: the AWS emulator, the emulated event source mapping, the
//! `bootstrap` binary under a Lambda Runtime API, the OTLP receiver, and the CLI as a user runs it.

mod bootstrap_runtime_api;
mod cli;
mod collector;
mod episodes;
mod event_source_mapping;
mod faults;
mod input_limits;
mod jaeger;
mod kpl_aggregation;
mod kpl_reference;
mod local_stack;
mod malformed_corpus;
mod on_call;
mod read_back;
mod region;
mod report;
mod soak;
mod telemetry;
mod up;

/// The `reactor-monitor` binary as a user runs it from the project's root, with no emulator
/// endpoint inherited from the environment.
pub fn cli() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_reactor-monitor"));
    command
        .env_remove("AWS_ENDPOINT_URL")
        .current_dir(reactor_monitor_local::project_root());
    command
}

/// Fails the test with the command's stderr unless it exited successfully.
pub fn assert_success(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

//! The function in process: the pipeline on in-memory adapters, the AWS adapters on mocked SDK
//! clients, property tests, and real Kinesis event JSON.

mod adapters_mocked;
mod episode_properties;
mod episodes;
mod kinesis_event;
mod mocked;
mod pipeline_outcomes;
mod properties;
mod sink_faults;
mod sink_rules;
mod spans;

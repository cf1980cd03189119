//! reactor-monitor: reactor coolant temperatures from Kinesis to DynamoDB, SNS alerts and a
//! dead-letter sink, with one outcome per record and telemetry for every flow.

pub mod adapters;
pub mod aws;
pub mod config;
pub mod domain;
pub mod function;
pub mod kinesis;
pub mod kpl;
pub mod lambda;
pub mod operation;
pub mod pipeline;
pub mod ports;
pub mod silence;
pub mod sinks;
pub mod telemetry;

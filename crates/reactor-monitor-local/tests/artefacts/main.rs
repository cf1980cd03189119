//! The deployable artefacts against the code: template, dashboards, alarms and collector
//! configurations name only what the code emits, and the template's policies stay least-privilege.

mod cloudformation;
mod collector_layers;
mod consistency;
mod on_failure;
mod template_policy;

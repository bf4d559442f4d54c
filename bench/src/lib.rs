//! The bench command's library: load generators, ceilings, measurements
//! and the report. The binary (`estate-bench`, `src/main.rs`) parses the
//! command line and calls in here.

pub mod attack;
pub mod bare_http;
pub mod broker_ceiling;
pub mod catch_up;
pub mod chart;
pub mod cpu;
pub mod end_to_end;
pub mod enrich_load;
pub mod hops;
pub mod http_load;
pub mod ingest_load;
pub mod ingest_result;
pub mod latency;
pub mod open_loop_search;
pub mod peer;
pub mod pipeline;
pub mod process;
pub mod procfs;
pub mod receiver_load;
pub mod receivers;
pub mod report;
pub mod report_chart;
pub mod report_ingest;
pub mod report_pipeline;
pub mod requests;
pub mod sustained_rate;
pub mod targets;
pub mod topic_scan;
pub mod topics;
pub mod write_ceiling;

//! All integration tests in one binary (one link instead of one per area), a module per area.

mod helpers;

mod app_ui;
mod calibration_ui;
mod cli;
mod cli_files;
mod cli_hw_sim;
mod docs;
mod eval;
mod format_example;
mod generate;
mod generate_ui;
mod hw;
mod hw_ui;
mod mutation;
mod packed_roundtrip;
mod plan;
mod quality_ui;
mod resume_ui;
mod scale_ui;
mod search_oracle;
mod shard;
mod shard_ui;
mod slurm;
mod teach_cli;
mod teach_ui;

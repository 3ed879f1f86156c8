//! Shared helpers of the examples.

pub mod plan_offline;

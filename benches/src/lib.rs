//! Shared helpers of the benches.

pub mod planner_data;

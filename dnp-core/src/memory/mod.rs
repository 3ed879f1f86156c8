//! In-memory implementations of the SDK traits, for embedders, examples and tests:
//! [`MemoryTokenStore`], [`MemoryJobQueue`], [`MemoryActionLog`] and [`MemoryProvider`].
//!
//! They keep the traits' contracts exactly (the shared suites run against them) but
//! nothing survives the process. The token store keeps tokens in `secrecy` wrappers,
//! not encrypted: use `dnp-vault` for anything real.

mod action_log;
mod job_queue;
mod provider;
mod token_store;

pub use action_log::MemoryActionLog;
pub use job_queue::MemoryJobQueue;
pub use provider::{Fault, MemoryProvider};
pub use token_store::MemoryTokenStore;

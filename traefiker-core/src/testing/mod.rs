//! Test kit for backends and embedders (feature `testing`): a stateful in-memory
//! [`ContainerManager`](crate::ContainerManager), a scripted activity source, a manual clock,
//! and the [`conformance`] suite every backend runs.

mod clock;
pub mod conformance;
mod memory;
mod scripted;

pub use clock::ManualClock;
pub use memory::{AssignMode, Faults, InMemoryManager, Op};
pub use scripted::ScriptedActivity;

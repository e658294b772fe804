//! Test kit (feature `testing`): [`FakeRancher`], a stateful Rancher 1.x on wiremock, for this
//! crate's tests and for embedders' integration tests.

mod fake_rancher;

pub use fake_rancher::{
    FakeRancher, FakeService, Fault, PeerForm, DEFAULT_REPLICA, ENV_ID, STACK_ID, STACK_NAME,
};

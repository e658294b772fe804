//! The in-memory backend passes the conformance suite, directly and behind `Arc<dyn>`.

use std::sync::Arc;

use traefiker_core::testing::conformance::{run_all, Caps, Context};
use traefiker_core::testing::{AssignMode, InMemoryManager};
use traefiker_core::{ContainerManager, Naming};

fn context() -> Context {
    Context::new(
        "kbase/narrative:5.4.3",
        Caps {
            reports_address: false,
            zombies: true,
            conditional_assign: true,
            marks_connected: true,
            conditional: false,
        },
    )
}

#[tokio::test]
async fn in_memory_manager_conforms() {
    let manager = InMemoryManager::new(Naming::default());
    run_all(&manager, &context()).await;
    assert!(manager.containers().is_empty(), "the suite cleans up");
}

#[tokio::test]
async fn in_memory_manager_conforms_as_a_trait_object() {
    let manager: Arc<dyn ContainerManager> = Arc::new(InMemoryManager::new(Naming::default()));
    run_all(manager.as_ref(), &context()).await;
}

#[tokio::test]
async fn in_memory_manager_conforms_when_it_renames_like_rancher() {
    let manager = InMemoryManager::new(Naming::default())
        .with_assign_mode(AssignMode::ReadThenRename)
        .with_latency(std::time::Duration::from_millis(2));
    let mut ctx = context();
    ctx.caps.conditional_assign = false;
    run_all(&manager, &ctx).await;
    assert!(manager.containers().is_empty(), "the suite cleans up");
}

#[tokio::test(start_paused = true)]
async fn in_memory_manager_conforms_when_every_write_is_conditional() {
    let manager = InMemoryManager::new(Naming::default())
        .with_assign_mode(AssignMode::Versioned)
        .with_latency(std::time::Duration::from_millis(2));
    let mut ctx = context();
    ctx.caps.conditional = true;
    run_all(&manager, &ctx).await;
    // Removals land a round trip after their claim.
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    assert!(manager.containers().is_empty(), "the suite cleans up");
}

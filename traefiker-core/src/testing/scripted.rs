use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::activity::{ActivitySnapshot, ActivitySource, ActivityTarget};
use crate::error::ActivityError;

/// An activity source that answers what it is told: queued answers first, then the standing
/// one (an empty snapshot unless set).
#[derive(Debug)]
pub struct ScriptedActivity {
    name: String,
    queued: Mutex<VecDeque<Result<ActivitySnapshot, ActivityError>>>,
    standing: Mutex<Result<ActivitySnapshot, ActivityError>>,
    calls: Mutex<Vec<Vec<ActivityTarget>>>,
}

impl ScriptedActivity {
    /// A source named `name` that sees nobody active.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            queued: Mutex::new(VecDeque::new()),
            standing: Mutex::new(Ok(ActivitySnapshot::new())),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Answer `answer` from now on.
    pub fn set(&self, answer: Result<ActivitySnapshot, ActivityError>) {
        *self.standing.lock().unwrap_or_else(|p| p.into_inner()) = answer;
    }

    /// Answer `answer` once, before the standing answer.
    pub fn push(&self, answer: Result<ActivitySnapshot, ActivityError>) {
        self.queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(answer);
    }

    /// The targets of every call so far.
    pub fn calls(&self) -> Vec<Vec<ActivityTarget>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl ActivitySource for ScriptedActivity {
    fn name(&self) -> &str {
        &self.name
    }

    async fn snapshot(
        &self,
        targets: &[ActivityTarget],
    ) -> Result<ActivitySnapshot, ActivityError> {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(targets.to_vec());
        let queued = self
            .queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front();
        queued.unwrap_or_else(|| {
            self.standing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        })
    }
}

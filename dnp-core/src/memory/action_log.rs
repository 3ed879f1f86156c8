use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::action::Action;
use crate::error::StoreError;
use crate::executor::{ActionLog, ItemState, LoggedAction, StateUpdate};
use crate::id::{ActionId, BatchId};

/// An [`ActionLog`] in memory.
#[derive(Debug, Default)]
pub struct MemoryActionLog {
    batches: Mutex<BTreeMap<BatchId, BTreeMap<ActionId, LoggedAction>>>,
}

impl MemoryActionLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ActionLog for MemoryActionLog {
    async fn record(&self, batch: BatchId, actions: &[Action]) -> Result<(), StoreError> {
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        batches.entry(batch).or_insert_with(|| {
            actions
                .iter()
                .map(|a| {
                    (a.id, LoggedAction { action: a.clone(), state: ItemState::Planned, failure: None, note: None })
                })
                .collect()
        });
        Ok(())
    }

    async fn update(&self, batch: BatchId, updates: &[StateUpdate]) -> Result<(), StoreError> {
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let rows = batches.get_mut(&batch).ok_or_else(|| StoreError::NotFound { what: format!("batch {batch}") })?;
        if let Some(missing) = updates.iter().find(|u| !rows.contains_key(&u.action)) {
            return Err(StoreError::NotFound { what: format!("action {} of batch {batch}", missing.action) });
        }
        for u in updates {
            if let Some(row) = rows.get_mut(&u.action) {
                row.state = u.state;
                row.failure = u.failure.clone();
                if u.note.is_some() {
                    row.note = u.note.clone();
                }
            }
        }
        Ok(())
    }

    async fn actions(&self, batch: BatchId) -> Result<Vec<LoggedAction>, StoreError> {
        let batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        Ok(batches.get(&batch).map(|rows| rows.values().cloned().collect()).unwrap_or_default())
    }
}

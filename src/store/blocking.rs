//! The store for async code: every call runs on tokio's blocking pool, never on the runtime's
//! workers, which also serve HTTP (SQLite waits up to its busy timeout for another writer, and
//! commits fsync).

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{Store, StoreError};

/// One store connection shared by the tasks of one component; calls take turns.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<Store>>);

impl Shared {
    /// Opens the store off the runtime.
    pub async fn open(root: &Path) -> Result<Shared, StoreError> {
        let root = root.to_path_buf();
        let store = run_blocking(move || Store::open(&root)).await??;
        Ok(Shared(Arc::new(Mutex::new(store))))
    }

    /// Runs `f` with the store on the blocking pool. A panic inside `f` is an error of this
    /// call (the caller logs it and goes on), never the end of the task that made it.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.0.clone();
        run_blocking(move || {
            // A poisoned lock only says an earlier call panicked; SQLite rolled its
            // transaction back, so the connection is still sound.
            let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut store)
        })
        .await?
    }
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Abandoned(format!("a store call failed: {e}")))
}

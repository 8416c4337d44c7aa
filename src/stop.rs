//! A request to start nothing new (Ctrl-C, SIGTERM), shared by the signal handler, the
//! executor's workers and the cloud client: work not yet sent is not sent, work in flight
//! finishes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Debug, Default)]
pub(crate) struct Stop(Arc<AtomicBool>);

impl Stop {
    pub(crate) fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub(crate) fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Wait until a stop is requested.
    pub(crate) async fn wait(&self) {
        while !self.requested() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

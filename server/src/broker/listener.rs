//! Who hears about topic changes. The cluster snapshot publisher, a layer
//! above the broker, implements this; the broker only knows that someone
//! wants to hear, so its arrows keep pointing down.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Told after a topic is created, deleted or reconfigured.
pub trait TopicListener: Send + Sync + std::fmt::Debug {
    /// Handles the change; the broker awaits it for create and delete.
    fn topics_changed(self: Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

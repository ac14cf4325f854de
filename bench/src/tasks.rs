//! Awaiting the bench's worker tasks.

use tokio::task::JoinHandle;

use crate::BenchError;

/// A worker task of the bench.
pub(crate) type Task<T> = JoinHandle<Result<T, BenchError>>;

/// Awaits every task and returns their results in order; the first error
/// wins, but only once all have finished (none is left running behind the
/// summary). `what` names the tasks in the message about one that died.
pub(crate) async fn join_all<T>(tasks: Vec<Task<T>>, what: &str) -> Result<Vec<T>, BenchError> {
    let mut out = Vec::with_capacity(tasks.len());
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(BenchError::Failed(format!("{what} task failed: {e}")));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

//! The bounded generation queue: pipeline work runs on blocking threads,
//! at most `in_flight` at once and `queued` waiting; beyond that a request is
//! turned away at once with `503` and `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// An admitted request's place in the queue.
pub struct Ticket {
    admitted: OwnedSemaphorePermit,
    workers: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

impl Ticket {
    /// Runs `f` on a blocking thread once a worker is free; `504` after
    /// `timeout` (the work itself still runs to its end: its permits travel
    /// with it, so a case it opens and its audit record are never cut short).
    pub async fn run<T: Send + 'static>(self, timeout: Duration, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let Ticket { admitted, workers, waiting } = self;
        waiting.fetch_add(1, Ordering::Relaxed);
        let work = async move {
            let worker = workers.acquire_owned().await;
            waiting.fetch_sub(1, Ordering::Relaxed);
            let worker = worker.map_err(ApiError::internal)?;
            tokio::task::spawn_blocking(move || {
                let _permits = (admitted, worker);
                f()
            })
            .await
            .map_err(ApiError::internal)
        };
        // The wait and the work are spawned so that a client that leaves (or a
        // timeout) never drops the work half-done.
        let handle = tokio::spawn(work);
        match tokio::time::timeout(timeout, handle).await {
            Ok(joined) => joined.map_err(ApiError::internal)?,
            Err(_) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!(
                    "no answer within {} s; the request still completes in the background and is in the audit log (any case it opened is kept); ask again or shorten the question",
                    timeout.as_secs()
                ),
            )),
        }
    }
}

/// Admission and worker permits for the pipeline.
pub struct Gate {
    /// Permits for requests admitted (working or waiting).
    admitted: Arc<Semaphore>,
    /// Permits for requests working.
    workers: Arc<Semaphore>,
    in_flight: usize,
    capacity: usize,
    waiting: Arc<AtomicUsize>,
}

impl Gate {
    /// A gate letting `in_flight` requests work and `queued` more wait.
    pub fn new(in_flight: usize, queued: usize) -> Gate {
        let in_flight = in_flight.max(1);
        let capacity = in_flight + queued;
        Gate {
            admitted: Arc::new(Semaphore::new(capacity)),
            workers: Arc::new(Semaphore::new(in_flight)),
            in_flight,
            capacity,
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Requests waiting for a worker now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Requests working now.
    pub fn working(&self) -> usize {
        self.in_flight - self.workers.available_permits()
    }

    /// Admits a request, or answers `503` with `Retry-After` when the queue
    /// is full. The ticket holds its place until its work has run.
    pub fn admit(&self) -> Result<Ticket, ApiError> {
        let admitted = self.admitted.clone().try_acquire_owned().map_err(|_| {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                format!("the answer queue is full ({} working, {} waiting); try again in a few seconds", self.in_flight, self.capacity - self.in_flight),
            );
            e.retry_after = Some(2);
            e
        })?;
        Ok(Ticket { admitted, workers: self.workers.clone(), waiting: self.waiting.clone() })
    }

    /// [`Gate::admit`] then [`Ticket::run`].
    pub async fn run<T: Send + 'static>(&self, timeout: Duration, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        self.admit()?.run(timeout, f).await
    }

    /// Waits until no admitted work is left (graceful shutdown).
    pub async fn drain(&self) {
        let n = u32::try_from(self.capacity).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(Duration::from_secs(600), self.admitted.acquire_many(n)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_answers_503_with_retry_after_and_admitted_work_finishes() {
        let gate = Arc::new(Gate::new(1, 1));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let g = gate.clone();
        let first = tokio::spawn(async move { g.run(Duration::from_secs(30), move || rx.recv().is_ok()).await });
        // Let the first take the only worker.
        while gate.working() == 0 {
            tokio::task::yield_now().await;
        }
        let g = gate.clone();
        let second = tokio::spawn(async move { g.run(Duration::from_secs(30), || 2).await });
        while gate.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        let third = gate.run(Duration::from_secs(30), || 3).await;
        let e = third.expect_err("a third request must be turned away");
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.retry_after, Some(2));
        tx.send(()).unwrap();
        assert!(first.await.unwrap().unwrap());
        assert_eq!(second.await.unwrap().unwrap(), 2);
        gate.drain().await;
    }

    #[tokio::test]
    async fn a_timed_out_request_still_runs_its_work_to_the_end() {
        let gate = Gate::new(1, 0);
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let r = gate
            .run(Duration::from_millis(20), move || {
                std::thread::sleep(Duration::from_millis(200));
                d.store(1, Ordering::SeqCst);
            })
            .await;
        assert_eq!(r.expect_err("must time out").status(), StatusCode::GATEWAY_TIMEOUT);
        gate.drain().await;
        assert_eq!(done.load(Ordering::SeqCst), 1, "the work finished before drain returned");
    }
}

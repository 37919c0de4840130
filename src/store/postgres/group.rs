//! Requests to PostgreSQL answered in groups, by one task per kind of request.
//!
//! A request hands its data to the task and waits. The task takes every request waiting at
//! that moment (up to [`Job::MOST`]) as one group and runs it with one statement or one
//! transaction ([`Job::run`]), then answers each request. There is no waiting for more: while
//! one group runs, the next gathers, and [`IN_FLIGHT`] groups may be on their way at once. So
//! many requests cost PostgreSQL one statement, one round trip and one commit, not one each.
//!
//! The task ends when the last copy of its [`Grouper`] is dropped (its channel closes). A
//! request whose task is gone (the runtime it ran on has ended) starts another one; a request
//! that cannot be handed over, or whose group is lost, is answered with an error: none is left
//! waiting.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::store::{StoreError, StoreResult};

/// Groups of one kind on their way at once: one running while the next is sent.
const IN_FLIGHT: usize = 2;

/// One request of a group: its data, and where its answer goes.
pub(super) struct Pending<J: Job> {
    pub(super) job: J,
    pub(super) reply: oneshot::Sender<StoreResult<J::Answer>>,
}

impl<J: Job> Pending<J> {
    pub(super) fn answer(self, answer: StoreResult<J::Answer>) {
        let _ = self.reply.send(answer);
    }
}

/// A kind of request that can be run many at once.
pub(super) trait Job: Send + Sized + 'static {
    type Answer: Send + 'static;
    /// Most requests one group takes.
    const MOST: usize;

    /// Runs a group and answers each of its requests; `true` when the group as a whole
    /// succeeded (counted for the tests).
    fn run(pool: PgPool, group: Vec<Pending<Self>>) -> impl Future<Output = bool> + Send;
}

/// The store's side of one task: hands requests over and waits for their answers.
pub(super) struct Grouper<J: Job> {
    pool: PgPool,
    /// The task's inbox, started with the first request (and again if the task is gone, as
    /// when the runtime that ran it has ended).
    inbox: Mutex<Option<mpsc::UnboundedSender<Pending<J>>>>,
    /// Requests handed over and not yet answered, for the metrics.
    waiting: Arc<AtomicU64>,
    /// Groups that succeeded, for the tests.
    succeeded: Arc<AtomicU64>,
}

/// Takes one from a count when dropped (also when the caller stops waiting).
struct Waiting(Arc<AtomicU64>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<J: Job> Grouper<J> {
    pub(super) fn new(pool: PgPool) -> Grouper<J> {
        Grouper {
            pool,
            inbox: Mutex::new(None),
            waiting: Arc::new(AtomicU64::new(0)),
            succeeded: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Requests handed over and not answered yet.
    pub(super) fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Groups that succeeded so far.
    #[cfg(test)]
    pub(super) fn succeeded(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
    }

    /// The count of groups, as the task holds it: gone once that task has ended.
    #[cfg(test)]
    pub(super) fn task_probe(&self) -> std::sync::Weak<AtomicU64> {
        Arc::downgrade(&self.succeeded)
    }

    /// Runs `job` with whatever else is waiting, and returns its own answer.
    pub(super) async fn run(&self, job: J) -> StoreResult<J::Answer> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(self.waiting.clone());
        let (reply, answer) = oneshot::channel();
        self.hand_over(Pending { job, reply })?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the database task stopped before answering".into())
        })?
    }

    fn hand_over(&self, request: Pending<J>) -> StoreResult<()> {
        let mut inbox = self
            .inbox
            .lock()
            .map_err(|_| StoreError::Internal("a database task's inbox is poisoned".into()))?;
        // A task that has ended (its runtime stopped) gives the request back.
        let request = match inbox.as_ref() {
            Some(sender) => match sender.send(request) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(request)) => request,
            },
            None => request,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(StoreError::Internal(
                "no tokio runtime to run a database task on".into(),
            ));
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        runtime.spawn(task(self.pool.clone(), receiver, self.succeeded.clone()));
        let sent = sender.send(request);
        *inbox = Some(sender);
        sent.map_err(|_| StoreError::Unavailable("a database task did not start".into()))
    }
}

/// The task: takes what waits as one group, and starts running it as soon as one of the
/// [`IN_FLIGHT`] slots is free; ends when every sender is gone.
async fn task<J: Job>(
    pool: PgPool,
    mut inbox: mpsc::UnboundedReceiver<Pending<J>>,
    succeeded: Arc<AtomicU64>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = inbox.recv().await {
        // Whatever arrives while every slot is busy joins the group taken next.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            first.answer(Err(StoreError::Internal("a task's slots closed".into())));
            continue;
        };
        let mut group = vec![first];
        while group.len() < J::MOST {
            match inbox.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let (pool, succeeded) = (pool.clone(), succeeded.clone());
        tokio::spawn(async move {
            if J::run(pool, group).await {
                succeeded.fetch_add(1, Ordering::Relaxed);
            }
            drop(slot);
        });
    }
}

/// What the later requests of a group that name a key already named hear.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Repeats {
    /// The first takes what the statement found; the later ones find it used (`Default`: none,
    /// or `false`), as a second statement of their own would have.
    FindItUsed,
    /// Every one hears what the statement found for the key.
    Share,
}

/// Runs a group whose requests each name a key, with each key once in the statement (one
/// statement may not touch a row twice), the first request of a key standing for it; then
/// answers each request as `repeats` says. If the group fails other than for an outage, each
/// request runs again alone, so that only the culprit hears of its error.
pub(super) async fn run_keyed<J, K, F>(
    pool: &PgPool,
    group: Vec<Pending<J>>,
    key: impl Fn(&J) -> K,
    repeats: Repeats,
    run: F,
) -> bool
where
    J: Job,
    J::Answer: Default + Clone,
    K: Ord + Clone,
    F: AsyncFn(&PgPool, &BTreeMap<K, &J>) -> StoreResult<BTreeMap<K, J::Answer>>,
{
    let mut keyed: BTreeMap<K, &J> = BTreeMap::new();
    for request in &group {
        keyed.entry(key(&request.job)).or_insert(&request.job);
    }
    let error = match run(pool, &keyed).await {
        Ok(mut answers) => {
            for request in group {
                let answer = answers.get_mut(&key(&request.job)).map(|a| match repeats {
                    Repeats::FindItUsed => std::mem::take(a),
                    Repeats::Share => a.clone(),
                });
                request.answer(Ok(answer.unwrap_or_default()));
            }
            return true;
        }
        Err(error) => error,
    };
    if group.len() == 1 || matches!(error, StoreError::Unavailable(_)) {
        for request in group {
            request.answer(Err(error.clone()));
        }
        return false;
    }
    for request in group {
        let k = key(&request.job);
        let alone = BTreeMap::from([(k.clone(), &request.job)]);
        let answer = run(pool, &alone)
            .await
            .map(|mut a| a.remove(&k).unwrap_or_default());
        request.answer(answer);
    }
    false
}

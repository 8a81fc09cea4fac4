//! Waiting for containers: the exits this process reaps or hears of from their supervisors, [`Engine::wait`]
//! and [`Engine::wait_async`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Engine;
use super::error::{Error, Result};
use super::records::{RecordedExit, process_exists};

/// How a container's first process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Its exit code; `None` when a signal killed it or the exit is unknown.
    pub code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// The kernel's OOM killer ended a process of the container (it went over its memory limit).
    pub oom_killed: bool,
}

impl ExitInfo {
    /// An exit nobody recorded (the process that reaped the container ended before it did).
    pub const UNKNOWN: ExitInfo = ExitInfo {
        code: None,
        signal: None,
        oom_killed: false,
    };

    /// The status docker reports: the code, or 128 + the signal; `None` when unknown.
    pub fn status(&self) -> Option<i32> {
        self.code.or(self.signal.map(|s| 128 + s))
    }
}

impl From<RecordedExit> for ExitInfo {
    fn from(e: RecordedExit) -> ExitInfo {
        ExitInfo {
            code: e.code,
            signal: e.signal,
            oom_killed: e.oom_kills > 0,
        }
    }
}

/// One container this process reaps: its exit once known, and the async waiters to wake then.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    state: Mutex<WatchState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct WatchState {
    exit: Option<ExitInfo>,
    wakers: Vec<Waker>,
}

impl Watch {
    /// Records the exit and wakes every waiter.
    pub fn finish(&self, exit: ExitInfo) {
        let wakers = {
            let mut state = self.lock();
            state.exit = Some(exit);
            std::mem::take(&mut state.wakers)
        };
        self.done.notify_all();
        wakers.into_iter().for_each(Waker::wake);
    }

    fn wait(&self) -> ExitInfo {
        let mut state = self.lock();
        loop {
            if let Some(e) = state.exit {
                return e;
            }
            state = self.done.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The exit, or `None` after registering `waker` to be woken with it (once per task: a task that polls
    /// new futures in a loop does not pile up wakers).
    fn poll_exit(&self, waker: &Waker) -> Option<ExitInfo> {
        let mut state = self.lock();
        if state.exit.is_none() {
            state.wakers.retain(|w| !w.will_wake(waker));
            state.wakers.push(waker.clone());
        }
        state.exit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The containers this process reaps, by name (shared by every clone of an engine).
#[derive(Debug, Default)]
pub(crate) struct Reaping {
    watches: Mutex<HashMap<String, Arc<Watch>>>,
}

impl Reaping {
    /// A new watch for `name` (replacing an older one of a removed container of that name).
    pub fn watch(&self, name: &str) -> Arc<Watch> {
        let w = Arc::new(Watch::default());
        self.lock().insert(name.to_string(), w.clone());
        w
    }

    /// The watch of `name`, if this process reaps it.
    pub fn get(&self, name: &str) -> Option<Arc<Watch>> {
        self.lock().get(name).cloned()
    }

    /// Forgets `name`'s watch if it is still `watch`.
    pub fn forget_if(&self, name: &str, watch: &Arc<Watch>) {
        let mut watches = self.lock();
        if watches.get(name).is_some_and(|w| Arc::ptr_eq(w, watch)) {
            watches.remove(name);
        }
    }

    /// Forgets `name` (after its removal).
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Watch>>> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Engine {
    /// Waits until container `name`'s first process has ended and returns how. For a container this process
    /// started (itself or through its supervisor), that is once its exit is recorded, its network given back and
    /// (auto-remove) it is removed; for one another process started, the record is polled (see the
    /// [module docs](super#who-waits-for-a-container) for when the exit is unknown). A container that its
    /// supervisor restarts gives the exit of the run that went on when the wait began; an exited one, its
    /// recorded exit.
    ///
    /// Blocks; see [`wait_async`](Engine::wait_async).
    ///
    /// # Errors
    /// [`Error::NoSuchContainer`]; [`Error::NotStarted`] for a container that was never started.
    pub fn wait(&self, name: &str) -> Result<ExitInfo> {
        if let Some(w) = self.inner.reaping.get(name) {
            return Ok(w.wait());
        }
        self.wait_record(name)
    }

    /// [`wait`](Engine::wait) for a container this process does not reap: polls its record.
    pub(crate) fn wait_record(&self, name: &str) -> Result<ExitInfo> {
        let first = self.records().get(name)?;
        loop {
            let r = self.records().get(name)?;
            if let Some(exit) = r.exit {
                return Ok(exit.into());
            }
            // It ended and its supervisor started it again between two looks.
            if (r.restart_count, r.started) != (first.restart_count, first.started) {
                return Ok(r.last_exit.map_or(ExitInfo::UNKNOWN, ExitInfo::from));
            }
            if r.started.is_none() && r.settings.is_some() && !r.creating {
                return Err(Error::NotStarted(name.to_string()));
            }
            let reaper_alive = r.owner.is_some_and(|o| o.alive());
            if !reaper_alive && !r.creating && !process_exists(self.layout(), name) {
                return Ok(ExitInfo::UNKNOWN);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`wait`](Engine::wait) without blocking the caller, on any executor. For a container this process
    /// started, the future is woken by the thread that reaps it; for one another process started, the record is
    /// polled on a thread of the future's own (which ends with the container). Dropping the future stops
    /// nobody: the container stays managed (reaped, recorded, listed) as before.
    pub fn wait_async(&self, name: &str) -> WaitFuture {
        if let Some(watch) = self.inner.reaping.get(name) {
            return WaitFuture(Waiting::Watch(watch));
        }
        let engine = self.clone();
        let name = name.to_string();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let theirs = shared.clone();
        let spawned = std::thread::Builder::new().name("wharf-wait".into()).spawn(move || {
            let result = engine.wait(&name);
            let mut s = theirs.lock().unwrap_or_else(PoisonError::into_inner);
            s.result = Some(result);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        });
        if let Err(e) = spawned {
            shared.lock().unwrap_or_else(PoisonError::into_inner).result =
                Some(Err(Error::io("spawn a thread to wait for", "the container")(e)));
        }
        WaitFuture(Waiting::Thread(shared))
    }
}

#[derive(Default)]
struct Shared {
    result: Option<Result<ExitInfo>>,
    waker: Option<Waker>,
}

enum Waiting {
    /// A container this process reaps.
    Watch(Arc<Watch>),
    /// One another process started: a thread polls its record.
    Thread(Arc<Mutex<Shared>>),
}

/// The future of [`Engine::wait_async`].
#[must_use = "a future does nothing unless polled"]
pub struct WaitFuture(Waiting);

impl std::fmt::Debug for WaitFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitFuture").finish_non_exhaustive()
    }
}

impl Future for WaitFuture {
    type Output = Result<ExitInfo>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<ExitInfo>> {
        match &self.0 {
            Waiting::Watch(watch) => match watch.poll_exit(cx.waker()) {
                Some(exit) => Poll::Ready(Ok(exit)),
                None => Poll::Pending,
            },
            Waiting::Thread(shared) => {
                let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                match s.result.take() {
                    Some(r) => Poll::Ready(r),
                    None => {
                        s.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }
        }
    }
}

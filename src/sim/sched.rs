//! The seeded scheduler: every call a machine makes to the model bucket waits here for its
//! turn, and the driver decides, from one seeded generator, whose turn comes next. Everything
//! runs on one thread under tokio's paused clock, so a seed replays exactly.

use std::sync::Mutex;

use tokio::sync::oneshot;

/// SplitMix64: small, fast, and enough for choosing interleavings.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

struct Waiter {
    machine: usize,
    /// A request whose body has left: the store commits it even while its machine stands still.
    landing: bool,
    what: String,
    go: oneshot::Sender<()>,
}

pub struct Sched {
    /// Every call goes at once (unit tests of one machine against the model bucket).
    free: bool,
    waiting: Mutex<Vec<Waiter>>,
    pub rng: Mutex<Rng>,
    /// The last steps taken, for a failing seed's report.
    trace: Mutex<std::collections::VecDeque<String>>,
}

impl Sched {
    pub fn new(seed: u64) -> Sched {
        Sched {
            free: false,
            waiting: Mutex::new(Vec::new()),
            rng: Mutex::new(Rng::new(seed)),
            trace: Mutex::new(Default::default()),
        }
    }

    /// A scheduler that lets every call go at once.
    pub fn free() -> Sched {
        Sched { free: true, ..Sched::new(0) }
    }

    /// Wait until the driver lets this call of `machine` go.
    pub async fn turn(&self, machine: usize, what: String) {
        self.wait_turn(machine, false, what).await
    }

    /// [`Sched::turn`] of a request already sent whole: a frozen machine does not hold it back.
    pub async fn landing(&self, machine: usize, what: String) {
        self.wait_turn(machine, true, what).await
    }

    async fn wait_turn(&self, machine: usize, landing: bool, what: String) {
        if self.free {
            return;
        }
        let (go, wait) = oneshot::channel();
        self.waiting.lock().unwrap().push(Waiter { machine, landing, what, go });
        // A dropped sender (the simulation ending) lets the call go on to its end.
        let _ = wait.await;
    }

    /// How many calls are waiting.
    pub fn waiting(&self) -> usize {
        self.waiting.lock().unwrap().len()
    }

    /// The positions of the waiting calls not of machine `except`.
    pub fn waiting_except(&self, except: Option<usize>) -> Vec<usize> {
        let w = self.waiting.lock().unwrap();
        (0..w.len()).filter(|i| Some(w[*i].machine) != except || w[*i].landing).collect()
    }

    /// Let the `pick`-th waiting call go. `false` when its machine was killed meanwhile.
    pub fn grant(&self, pick: usize) -> bool {
        let w = self.waiting.lock().unwrap().remove(pick);
        self.note(format!("m{} {}", w.machine, w.what));
        w.go.send(()).is_ok()
    }

    /// Forget the waiting calls of a killed machine (their futures are gone).
    pub fn forget(&self, machine: usize) {
        self.waiting.lock().unwrap().retain(|w| w.machine != machine);
    }

    pub fn note(&self, step: String) {
        let mut t = self.trace.lock().unwrap();
        if t.len() == 400 {
            t.pop_front();
        }
        t.push_back(step);
    }

    pub fn trace(&self) -> Vec<String> {
        self.trace.lock().unwrap().iter().cloned().collect()
    }

    pub fn draw(&self, n: usize) -> usize {
        self.rng.lock().unwrap().below(n)
    }

    pub fn chance(&self, percent: u64) -> bool {
        self.rng.lock().unwrap().chance(percent)
    }
}

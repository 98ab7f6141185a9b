//! One kernel's scenarios while they run: the plan indices not yet taken, shared by the VMs that
//! run that kernel (the first takes from the front, a helper restored from the same snapshot when
//! a job slot idles takes from the back), and the finished results held back until every one
//! before them in the plan is in, so that a kernel's results come out in plan order whether one
//! VM ran them or several. Pure bookkeeping: no VM, no I/O, no verdicts.

use std::collections::{BTreeMap, VecDeque};

/// Plan indices waiting, results waiting for their turn, and how many VMs take from it.
#[derive(Debug)]
pub struct Queue<T> {
    waiting: VecDeque<usize>,
    finished: BTreeMap<usize, T>,
    next_out: usize,
    len: usize,
    workers: usize,
}

impl<T> Queue<T> {
    /// Scenarios `0..len`, and one worker (the kernel's first VM) already taking from it.
    pub fn new(len: usize) -> Queue<T> {
        Queue { waiting: (0..len).collect(), finished: BTreeMap::new(), next_out: 0, len, workers: 1 }
    }

    /// The next index for a worker, from the front or (a helper) the back. `None` means the
    /// worker is done and is no longer counted: deciding to stop and leaving are one step, so
    /// no index is given back to a queue nobody takes from any more.
    pub fn take(&mut self, from_back: bool) -> Option<usize> {
        let i = if from_back { self.waiting.pop_back() } else { self.waiting.pop_front() };
        if i.is_none() {
            self.workers = self.workers.saturating_sub(1);
        }
        i
    }

    /// Give an index taken by a worker that cannot run it back, at the back (where a helper
    /// took it), and stop counting that worker. Refused (`false`, nothing changed) when it is
    /// the last worker: nobody would take the index again.
    pub fn give_back(&mut self, i: usize) -> bool {
        if self.workers <= 1 {
            return false;
        }
        self.waiting.push_back(i);
        self.workers -= 1;
        true
    }

    /// Every index still waiting, in plan order (a boot failure or the kernel's deadline turns
    /// them all into errors at once).
    pub fn take_all(&mut self) -> Vec<usize> {
        let mut all: Vec<usize> = self.waiting.drain(..).collect();
        all.sort_unstable();
        all
    }

    /// Indices still waiting (any order).
    pub fn waiting(&self) -> impl Iterator<Item = usize> + '_ {
        self.waiting.iter().copied()
    }

    /// How many indices are still waiting.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// VMs taking from this queue now.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// One more worker (a helper VM), only while there is something to split: at least two
    /// waiting, so the helper takes one and leaves one. `false` when not added.
    pub fn add_worker(&mut self) -> bool {
        if self.workers == 0 || self.waiting.len() < 2 {
            return false;
        }
        self.workers += 1;
        true
    }

    /// Index `i` finished with `item`: what may go out now, in plan order (empty while an
    /// earlier index is still running). A second item for the same index, or an index out of
    /// range, is a bug of the caller and is returned as `Err` with the item.
    pub fn finish(&mut self, i: usize, item: T) -> Result<Vec<T>, (usize, T)> {
        if i >= self.len || i < self.next_out || self.finished.contains_key(&i) {
            return Err((i, item));
        }
        self.finished.insert(i, item);
        let mut out = Vec::new();
        while let Some(item) = self.finished.remove(&self.next_out) {
            out.push(item);
            self.next_out += 1;
        }
        Ok(out)
    }

    /// Every index has its result out.
    pub fn complete(&self) -> bool {
        self.next_out == self.len
    }
}

#[cfg(test)]
mod tests {
    use super::Queue;

    #[test]
    fn two_workers_from_both_ends_give_every_result_once_in_plan_order() {
        let mut q: Queue<usize> = Queue::new(5);
        assert!(q.add_worker());
        let (a, b) = (q.take(false).unwrap(), q.take(true).unwrap());
        assert_eq!((a, b), (0, 4));
        // The helper's result waits for the ones before it.
        assert!(q.finish(4, 40).unwrap().is_empty());
        assert_eq!(q.finish(0, 0).unwrap(), vec![0]);
        let (c, d) = (q.take(false).unwrap(), q.take(true).unwrap());
        assert_eq!((c, d), (1, 3));
        assert!(q.finish(3, 30).unwrap().is_empty());
        assert_eq!(q.finish(1, 10).unwrap(), vec![10]);
        assert_eq!(q.take(true), Some(2));
        assert_eq!(q.take(false), None, "the first worker leaves");
        assert_eq!(q.finish(2, 20).unwrap(), vec![20, 30, 40]);
        assert_eq!(q.take(true), None);
        assert_eq!(q.workers(), 0);
        assert!(q.complete());
    }

    #[test]
    fn duplicates_and_strangers_are_refused() {
        let mut q: Queue<&str> = Queue::new(2);
        assert_eq!(q.finish(1, "b").unwrap(), Vec::<&str>::new());
        assert_eq!(q.finish(1, "again").unwrap_err(), (1, "again"));
        assert_eq!(q.finish(7, "x").unwrap_err(), (7, "x"));
        assert_eq!(q.finish(0, "a").unwrap(), vec!["a", "b"]);
        assert_eq!(q.finish(0, "late").unwrap_err(), (0, "late"));
    }

    #[test]
    fn a_helper_splits_only_what_has_two_left_and_gives_back_only_to_others() {
        let mut q: Queue<()> = Queue::new(2);
        assert!(!q.give_back(0), "the only worker cannot give back: nobody would take it");
        assert!(q.add_worker());
        let i = q.take(true).unwrap();
        assert!(!q.add_worker(), "one left: nothing to split");
        assert!(q.give_back(i));
        assert_eq!(q.workers(), 1);
        assert_eq!(q.take_all(), vec![0, 1]);
        assert_eq!(q.take(false), None);
        assert!(!q.add_worker(), "a queue nobody takes from gets no helper");
    }
}

//! The kubelet's crash-loop back-off: a container that keeps exiting is
//! restarted after 10 s, then 20 s, 40 s ... up to 5 minutes, and the delay
//! starts over once it has run for twice that maximum.

use std::time::Duration;

use tokio::time::Instant;

/// The back-off of one container. Its first restart is immediate (as the
/// kubelet's: the delay is armed by the restart, not by the first exit).
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// The delay the next restart waits, once armed.
    next: Option<Duration>,
}

impl Backoff {
    /// The kubelet's defaults: 10 s doubling to 300 s.
    pub const DEFAULT_INITIAL: Duration = Duration::from_secs(10);
    /// See [`Self::DEFAULT_INITIAL`].
    pub const DEFAULT_MAX: Duration = Duration::from_secs(300);

    /// A back-off from `initial` doubling to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            next: None,
        }
    }

    /// When a container that exited at `finished` (after running since
    /// `started`) may be restarted, and arms the delay after that one.
    /// `None` means at once.
    pub fn restart_at(&mut self, started: Option<Instant>, finished: Instant) -> Option<Instant> {
        // A container that ran long enough has left the crash loop.
        if started
            .is_some_and(|started| finished.saturating_duration_since(started) >= self.max * 2)
        {
            self.next = None;
        }
        match self.next {
            None => {
                self.next = Some(self.initial);
                None
            }
            Some(delay) => {
                self.next = Some((delay * 2).min(self.max));
                Some(finished + delay)
            }
        }
    }

    /// The delay the next restart would wait, for messages.
    pub fn current(&self) -> Option<Duration> {
        self.next
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Self::DEFAULT_INITIAL, Self::DEFAULT_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_to_the_maximum_after_an_immediate_first_restart() {
        let mut backoff = Backoff::default();
        let t0 = Instant::now();
        let delays: Vec<Option<u64>> = (0..9)
            .map(|_| {
                backoff
                    .restart_at(Some(t0), t0)
                    .map(|at| (at - t0).as_secs())
            })
            .collect();
        assert_eq!(
            delays,
            [
                None,
                Some(10),
                Some(20),
                Some(40),
                Some(80),
                Some(160),
                Some(300),
                Some(300),
                Some(300)
            ]
        );
    }

    #[test]
    fn a_container_that_ran_twice_the_maximum_starts_over() {
        let mut backoff = Backoff::default();
        let t0 = Instant::now();
        backoff.restart_at(Some(t0), t0);
        assert_eq!(
            backoff.restart_at(Some(t0), t0),
            Some(t0 + Duration::from_secs(10))
        );
        let later = t0 + Duration::from_secs(600);
        assert_eq!(backoff.restart_at(Some(t0), later), None);
        assert_eq!(backoff.current(), Some(Duration::from_secs(10)));
    }
}

//! Parts of finished streams that the next streams of the same detector
//! take over. A message's allocations (its buffers, per-rule offsets, key
//! verdicts) cost more than scanning a short one, and short ones are most
//! of what a proxy scans: the URL and every header line are messages of
//! their own, as are every base64 payload nested in a body and the
//! URL-encoded regions of each message (decoded together).

use std::sync::Mutex;

/// Parts kept at most: more than streams scan at once on a machine's
/// cores is rarely needed.
const KEPT: usize = 8;

/// A buffer that grew past this many elements is not kept: one large
/// message must not hold its memory for the rest of the session.
pub(crate) const KEPT_CAPACITY: usize = 64 * 1024;

/// Parts of type `T` shared by the streams of one detector (or by all
/// scans), on any thread: a stream takes one when it starts and gives it
/// back when dropped, so streams scanning at once never share a part.
pub(crate) struct Spares<T>(Mutex<Vec<T>>);

impl<T> Spares<T> {
    pub(crate) const fn new() -> Spares<T> {
        Spares(Mutex::new(Vec::new()))
    }
}

impl<T: Default> Spares<T> {
    /// A part a finished stream left, or a new one.
    pub(crate) fn take(&self) -> T {
        self.kept().pop().unwrap_or_default()
    }

    /// Keeps `part` for the next stream, if there is room.
    pub(crate) fn give_back(&self, part: T) {
        let mut kept = self.kept();
        if kept.len() < KEPT {
            kept.push(part);
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        // A part is plain data: one a panicking thread left is still whole.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `v`'s buffer, taken out of it and emptied for the next stream (`v` is
/// left a new vector); a new vector instead if it grew past
/// [`KEPT_CAPACITY`]. Emptied as it is given back, so that what it held (a
/// message's values, hits) is dropped now, not when a later stream takes
/// it; a stream still resets what it takes.
pub(crate) fn taken_emptied<T>(v: &mut Vec<T>) -> Vec<T> {
    let mut v = std::mem::take(v);
    if v.capacity() > KEPT_CAPACITY {
        return Vec::new();
    }
    v.clear();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_given_back_is_taken_again_up_to_the_number_kept() {
        let spares: Spares<Vec<u8>> = Spares::new();
        for _ in 0..KEPT + 2 {
            spares.give_back(Vec::with_capacity(100));
        }
        for _ in 0..KEPT {
            assert_eq!(spares.take().capacity(), 100);
        }
        assert_eq!(spares.take().capacity(), 0, "no more than KEPT are kept");
    }

    #[test]
    fn an_emptied_buffer_keeps_its_room_unless_it_grew_too_large() {
        let small = taken_emptied(&mut vec![7u8; 1000]);
        assert!(small.is_empty() && small.capacity() >= 1000);
        let large = taken_emptied(&mut vec![7u8; KEPT_CAPACITY + 1]);
        assert_eq!(large.capacity(), 0);
    }
}

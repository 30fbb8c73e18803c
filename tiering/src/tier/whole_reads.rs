//! Which cold reads of flush objects fetch the whole object, and the singleflight of those
//! reads.
//!
//! A flush object holds one small chunk per partition. Reading it whole (one GET, every
//! chunk decoded and cached) instead of one chunk (one ranged GET) pays off when other
//! chunks of it will be read too — a consumer of many of its partitions wants one chunk of
//! every flush object per partition — and wastes bytes, decoding and cache room when not: a
//! consumer of one partition of twelve would pull twelve times the bytes. `WholeReads`
//! decides per object from what readers asked for lately:
//!
//! 1. An object of which a second distinct chunk is asked for (a miss or a hit) while it is
//!    remembered is read whole: several partitions of it are being read.
//! 2. The first chunk asked for of an object is read whole only when most of the objects
//!    judged lately had several chunks asked for (the cold readers are many-partition
//!    consumers). This saves the ranged GET that rule 1 alone costs on every object before
//!    its second chunk is asked for. An object is judged "several" when its second chunk is
//!    asked for, "one" when [`JUDGE_AFTER_OBJECTS`] newer objects were remembered and it
//!    still had one: a one-partition reader moves on to newer objects, so its objects are
//!    judged "one" after a bounded number of whole reads and rule 2 stops.
//! 3. An object is read whole at most once while remembered: a later miss of one of its
//!    chunks means the cache evicted it before it was asked for, so reading whole does not
//!    pay there and the chunk is read alone. A whole read that failed may be tried again.
//!
//! Memory: at most [`OBJECTS_REMEMBERED`] objects of a key and a few words each.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Objects whose asked-for chunks are remembered (the newest). A many-partition consumer's
/// partitions must not drift further apart than this many objects for rule 1 to see them
/// (1024 flush objects of 8 MiB are 8 GiB of log).
const OBJECTS_REMEMBERED: usize = 1024;
/// An object with one chunk asked for is judged "one" once this many newer objects were
/// remembered: by then a reader of several of its partitions would have asked for another.
const JUDGE_AFTER_OBJECTS: u64 = 32;
/// Verdicts kept (the newest), as bits of a `u32`.
const VERDICTS_KEPT: u32 = 32;
/// Verdicts needed before rule 2 applies at all.
const VERDICTS_MIN: u32 = 4;
const _: () = assert!(VERDICTS_MIN <= VERDICTS_KEPT && VERDICTS_KEPT <= u32::BITS);

/// What a reader whose chunk missed the cache does.
#[derive(Debug)]
pub(super) enum Plan {
    /// Read the chunk alone (ranged GET).
    Range,
    /// Read the object whole, then [`WholeReads::finish`] with this flight.
    Lead(Arc<Notify>),
    /// Another reader is reading the object whole: wait for this flight, then look in the
    /// cache (and read the chunk alone if it is not there).
    Wait(Arc<Notify>),
}

#[derive(Debug, Default)]
pub(super) struct WholeReads {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    objects: HashMap<String, Interest>,
    /// Remembered objects, oldest first, for forgetting.
    order: VecDeque<String>,
    /// Objects not judged yet with their sequence numbers, oldest first (at most about
    /// `JUDGE_AFTER_OBJECTS`: older ones are judged as new ones come).
    unjudged: VecDeque<(u64, String)>,
    next_seq: u64,
    verdicts: Verdicts,
}

#[derive(Debug)]
struct Interest {
    /// Byte offset of the first chunk asked for.
    first_chunk: u64,
    /// Another chunk was asked for too.
    several: bool,
    judged: bool,
    flight: Flight,
}

#[derive(Debug)]
enum Flight {
    NotRead,
    Reading(Arc<Notify>),
    Read,
}

/// The newest verdicts: bit set = several chunks asked for.
#[derive(Debug, Default)]
struct Verdicts {
    bits: u32,
    count: u32,
}

impl Verdicts {
    fn push(&mut self, several: bool) {
        self.bits = (self.bits << 1) | u32::from(several);
        self.count = (self.count + 1).min(VERDICTS_KEPT);
    }

    /// At least three quarters of enough recent verdicts say "several".
    fn mostly_several(&self) -> bool {
        let mask = u32::MAX >> (u32::BITS - self.count.max(1));
        let several = (self.bits & mask).count_ones();
        self.count >= VERDICTS_MIN && several * 4 >= self.count * 3
    }
}

impl Interest {
    /// Notes that `chunk` was asked for; true when that makes it the object's second.
    fn ask(&mut self, chunk: u64) -> bool {
        if self.several || chunk == self.first_chunk {
            return false;
        }
        self.several = true;
        true
    }
}

impl WholeReads {
    /// A chunk of `object` at `chunk` (byte offset) missed the cache: how to read it.
    pub(super) fn plan(&self, object: &str, chunk: u64) -> Plan {
        let mut inner = self.inner.lock().expect("whole reads lock");
        let inner = &mut *inner;
        inner.remember(object, chunk);
        let mostly_several = inner.verdicts.mostly_several();
        let interest = inner.objects.get_mut(object).expect("remembered just now");
        match &interest.flight {
            Flight::Reading(flight) => Plan::Wait(flight.clone()),
            Flight::Read => Plan::Range,
            Flight::NotRead if interest.several || mostly_several => {
                let flight = Arc::new(Notify::new());
                interest.flight = Flight::Reading(flight.clone());
                Plan::Lead(flight)
            }
            Flight::NotRead => Plan::Range,
        }
    }

    /// A chunk of `object` at `chunk` was found in the cache: counts for rule 1 if the
    /// object is remembered (its first chunk missed lately).
    pub(super) fn note_hit(&self, object: &str, chunk: u64) {
        let mut inner = self.inner.lock().expect("whole reads lock");
        let inner = &mut *inner;
        if let Some(interest) = inner.objects.get_mut(object)
            && interest.ask(chunk)
            && !std::mem::replace(&mut interest.judged, true)
        {
            inner.verdicts.push(true);
        }
    }

    /// Whether `flight` (from [`Plan::Wait`]) still reads `object`.
    pub(super) fn is_reading(&self, object: &str, flight: &Arc<Notify>) -> bool {
        let inner = self.inner.lock().expect("whole reads lock");
        inner.objects.get(object).is_some_and(
            |interest| matches!(&interest.flight, Flight::Reading(f) if Arc::ptr_eq(f, flight)),
        )
    }

    /// Whether some reader is reading `object` whole now (read-ahead leaves its chunks to it).
    pub(super) fn is_reading_object(&self, object: &str) -> bool {
        let inner = self.inner.lock().expect("whole reads lock");
        inner
            .objects
            .get(object)
            .is_some_and(|interest| matches!(interest.flight, Flight::Reading(_)))
    }

    /// The whole read `flight` of `object` ended: `read` (not to be read whole again while
    /// remembered) or failed (a later miss may try again). The caller then wakes the waiters.
    pub(super) fn finish(&self, object: &str, flight: &Arc<Notify>, read: bool) {
        let mut inner = self.inner.lock().expect("whole reads lock");
        if let Some(interest) = inner.objects.get_mut(object)
            && matches!(&interest.flight, Flight::Reading(f) if Arc::ptr_eq(f, flight))
        {
            interest.flight = if read { Flight::Read } else { Flight::NotRead };
        }
    }

    #[cfg(test)]
    fn mostly_several(&self) -> bool {
        self.inner
            .lock()
            .expect("whole reads lock")
            .verdicts
            .mostly_several()
    }
}

impl Inner {
    /// Notes that `chunk` of `object` was asked for, remembering the object if it is new.
    fn remember(&mut self, object: &str, chunk: u64) {
        if let Some(interest) = self.objects.get_mut(object) {
            if interest.ask(chunk) && !std::mem::replace(&mut interest.judged, true) {
                self.verdicts.push(true);
            }
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.objects.insert(
            object.to_string(),
            Interest {
                first_chunk: chunk,
                several: false,
                judged: false,
                flight: Flight::NotRead,
            },
        );
        self.order.push_back(object.to_string());
        self.unjudged.push_back((seq, object.to_string()));
        self.judge_old();
        self.forget_old();
    }

    /// Judges "one" the objects remembered `JUDGE_AFTER_OBJECTS` objects ago or earlier that
    /// still had a single chunk asked for.
    fn judge_old(&mut self) {
        while let Some((seq, _)) = self.unjudged.front()
            && seq + JUDGE_AFTER_OBJECTS <= self.next_seq
        {
            let (_, object) = self.unjudged.pop_front().expect("front exists");
            if let Some(interest) = self.objects.get_mut(&object)
                && !std::mem::replace(&mut interest.judged, true)
            {
                self.verdicts.push(false);
            }
        }
    }

    fn forget_old(&mut self) {
        while self.order.len() > OBJECTS_REMEMBERED {
            let object = self.order.pop_front().expect("more than zero");
            // A whole read of a forgotten object still wakes its waiters (they hold the
            // flight); `finish` then finds nothing to update.
            self.objects.remove(&object);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(n: usize) -> String {
        format!("segments/00/{n:04}.seg")
    }

    #[test]
    fn one_chunk_is_read_alone_and_a_second_chunk_reads_the_object_whole() {
        let reads = WholeReads::default();
        assert!(matches!(reads.plan("a", 8), Plan::Range));
        // The same chunk again (its read failed, or the cache evicted it): still alone.
        assert!(matches!(reads.plan("a", 8), Plan::Range));
        let Plan::Lead(flight) = reads.plan("a", 100) else {
            panic!("a second chunk reads the object whole");
        };
        assert!(reads.is_reading("a", &flight));
        assert!(reads.is_reading_object("a"));
        let Plan::Wait(waited) = reads.plan("a", 200) else {
            panic!("a third chunk waits for that read");
        };
        assert!(Arc::ptr_eq(&flight, &waited));
        reads.finish("a", &flight, true);
        assert!(!reads.is_reading("a", &flight));
        // Read whole once: a later miss (evicted before use) reads the chunk alone.
        assert!(matches!(reads.plan("a", 300), Plan::Range));
    }

    #[test]
    fn a_failed_whole_read_may_be_tried_again() {
        let reads = WholeReads::default();
        assert!(matches!(reads.plan("a", 8), Plan::Range));
        let Plan::Lead(flight) = reads.plan("a", 100) else {
            panic!("a second chunk reads the object whole");
        };
        reads.finish("a", &flight, false);
        assert!(matches!(reads.plan("a", 100), Plan::Lead(_)));
    }

    #[test]
    fn a_hit_on_another_chunk_counts_as_asking_for_it() {
        let reads = WholeReads::default();
        reads.note_hit("a", 8); // not remembered: no effect
        assert!(matches!(reads.plan("a", 8), Plan::Range));
        reads.note_hit("a", 100);
        assert!(matches!(reads.plan("a", 200), Plan::Lead(_)));
    }

    /// Goal: rule 2 turns on for many-partition readers and off again for one-partition
    /// readers. Method: ask for two chunks of each of 4 objects (4 "several" verdicts), then
    /// the first chunk of a new object is read whole; then ask for one chunk of each of
    /// many objects, which are judged "one" as newer ones come, until first chunks are read
    /// alone again.
    #[test]
    fn first_chunks_are_read_whole_while_most_objects_had_several() {
        let reads = WholeReads::default();
        for n in 0..VERDICTS_MIN as usize {
            assert!(!reads.mostly_several());
            assert!(matches!(reads.plan(&object(n), 8), Plan::Range));
            let Plan::Lead(flight) = reads.plan(&object(n), 100) else {
                panic!("second chunk of object {n}");
            };
            reads.finish(&object(n), &flight, true);
        }
        assert!(reads.mostly_several());
        let next = VERDICTS_MIN as usize;
        assert!(matches!(reads.plan(&object(next), 8), Plan::Lead(_)));

        // One-chunk readers: each object judged "one" JUDGE_AFTER_OBJECTS objects later.
        let mut n = next + 1;
        while reads.mostly_several() {
            assert!(n < 200, "verdicts of one chunk never turned rule 2 off");
            reads.plan(&object(n), 8);
            n += 1;
        }
        assert!(matches!(reads.plan(&object(n), 8), Plan::Range));
    }

    #[test]
    fn old_objects_are_forgotten() {
        let reads = WholeReads::default();
        for n in 0..OBJECTS_REMEMBERED + 10 {
            reads.plan(&object(n), 8);
        }
        let inner = reads.inner.lock().unwrap();
        assert_eq!(inner.objects.len(), OBJECTS_REMEMBERED);
        assert_eq!(inner.order.len(), OBJECTS_REMEMBERED);
        assert!(inner.unjudged.len() <= JUDGE_AFTER_OBJECTS as usize);
        assert!(!inner.objects.contains_key(&object(0)));
    }
}

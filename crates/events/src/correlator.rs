//! Which Event a new one is counted in, and whether it is written at all,
//! as client-go's EventCorrelator decides it:
//!
//! - similar events (the same object, type, reason and source, whatever
//!   the message) are written apart until 10 different messages come within
//!   10 minutes; from then on each new message goes into one Event whose
//!   message starts "(combined from similar events): " (the
//!   EventAggregator), so a stream of ever different messages stays one
//!   Event;
//! - the same event again (the message too) within 10 minutes of the last
//!   raises the `count` and `lastTimestamp` of the Event written for it
//!   instead of writing another (the EventLogger), which is what `kubectl
//!   describe` shows as `(x3 over 2m)`;
//! - a source may send 25 events about one object at once, then one more
//!   every 5 minutes (the EventSourceObjectSpamFilter's token bucket per
//!   source and object); the events past that are counted in their
//!   series but not written, so an object that is always unhealthy does
//!   not keep writing.
//!
//! The caches are bounded as client-go's LRU caches are: past 4,096 keys,
//! the least recently used goes.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Event;
use lru::LruCache;
use tokio::sync::Mutex;

/// How long a series stays open after its last event (client-go's
/// maxIntervalInSeconds).
const WINDOW: SignedDuration = SignedDuration::from_mins(10);
/// How many different messages similar events may have before they are
/// combined (client-go's defaultAggregateMaxEvents).
const MAX_MESSAGES: usize = 10;
/// How many keys each cache holds (client-go's maxLruCacheEntries).
const MAX_KEYS: NonZeroUsize = NonZeroUsize::new(4096).unwrap();
/// What the message of combined events starts with.
pub const COMBINED: &str = "(combined from similar events): ";
/// How many events a source may send about one object at once, and how
/// long it takes to earn another (client-go's defaultSpamBurst and
/// defaultSpamQPS, 1/300).
const SPAM_BURST: i32 = 25;
const SPAM_REFILL: SignedDuration = SignedDuration::from_mins(5);

/// The Event a series was written as.
#[derive(Debug)]
pub struct Written {
    pub name: String,
    pub count: i32,
    /// When it was last written.
    pub last: Timestamp,
}

impl Written {
    /// Whether an event at `now` is counted in this one rather than
    /// written anew.
    pub fn continues_at(&self, now: Timestamp) -> bool {
        now.duration_since(self.last) <= WINDOW
    }
}

/// What becomes of an event.
pub struct Correlated {
    /// The series it is counted in.
    pub series: Series,
    /// Past its source's budget for the object: counted, not written.
    pub spam: bool,
}

/// One series: the Event written for it, if any yet. Its lock is held
/// across the write, so the same event recorded twice at once is counted
/// twice in one Event, not written as two.
pub type Series = Arc<Mutex<Option<Written>>>;

/// Both caches forget their least recently used key when full, as
/// client-go's LRU caches do, in constant time per event.
pub struct Correlator {
    /// The messages of similar events in the window, by [`similar_key`].
    similar: LruCache<String, Used<HashSet<String>>>,
    /// The series by [`event_key`], or by [`similar_key`] for combined ones.
    series: LruCache<String, Used<Series>>,
    /// What each source may still send about each object, by [`spam_key`];
    /// `None` when nothing is held back.
    budgets: Option<LruCache<String, Budget>>,
}

impl Default for Correlator {
    fn default() -> Self {
        Correlator {
            similar: LruCache::new(MAX_KEYS),
            series: LruCache::new(MAX_KEYS),
            budgets: Some(LruCache::new(MAX_KEYS)),
        }
    }
}

/// A token bucket, as client-go's rate limiter keeps one: full at first,
/// a token earned every [`SPAM_REFILL`], at most [`SPAM_BURST`] held. The
/// tokens are kept as the time they took to earn, so that they add up
/// exactly.
struct Budget {
    earned: SignedDuration,
    at: Timestamp,
}

impl Budget {
    fn full(now: Timestamp) -> Budget {
        Budget {
            earned: SPAM_REFILL * SPAM_BURST,
            at: now,
        }
    }

    /// Takes a token if one is there at `now`.
    fn take(&mut self, now: Timestamp) -> bool {
        let since = now.duration_since(self.at).max(SignedDuration::ZERO);
        self.earned = (self.earned + since).min(SPAM_REFILL * SPAM_BURST);
        self.at = self.at.max(now);
        if self.earned < SPAM_REFILL {
            return false;
        }
        self.earned -= SPAM_REFILL;
        true
    }
}

struct Used<T> {
    value: T,
    at: Timestamp,
}

impl Correlator {
    /// A correlator that holds no event back, as kube-scheduler's events
    /// recorder (events.k8s.io, which has no spam filter) writes them.
    pub fn without_spam_filter() -> Correlator {
        Correlator {
            budgets: None,
            ..Correlator::default()
        }
    }

    /// The series `event` at `now` is counted in, and whether it is spam;
    /// its message is rewritten when it is combined with similar ones.
    /// Spam is judged last, as client-go does: a dropped event still
    /// counts among similar ones and in its series.
    pub fn correlate(&mut self, event: &mut Event, now: Timestamp) -> Correlated {
        let key = self.aggregate(event, now);
        let used = entry(&mut self.series, key, now);
        used.at = now;
        let series = used.value.clone();
        let spam = self.budgets.as_mut().is_some_and(|budgets| {
            !budgets
                .get_or_insert_mut(spam_key(event), || Budget::full(now))
                .take(now)
        });
        Correlated { series, spam }
    }

    /// The key of the series `event` joins: its own, or, once similar
    /// events have had too many messages, theirs.
    fn aggregate(&mut self, event: &mut Event, now: Timestamp) -> String {
        let key = similar_key(event);
        let similar = entry(&mut self.similar, key.clone(), now);
        if now.duration_since(similar.at) > WINDOW {
            similar.value.clear();
        }
        similar.at = now;
        let message = event.message.clone().unwrap_or_default();
        similar.value.insert(message.clone());
        if similar.value.len() < MAX_MESSAGES {
            return event_key(event);
        }
        // Kept one short of the limit, so every further new message is combined.
        similar.value.remove(&message);
        event.message = Some(format!("{COMBINED}{message}"));
        key
    }
}

/// What makes events similar: client-go's EventAggregatorByReasonFunc.
fn similar_key(event: &Event) -> String {
    key(
        "similar",
        event,
        &[
            event.type_.as_deref(),
            event.reason.as_deref(),
            event.reporting_component.as_deref(),
            event.reporting_instance.as_deref(),
        ],
    )
}

/// What makes events the same: client-go's getEventKey.
fn event_key(event: &Event) -> String {
    key(
        "same",
        event,
        &[
            event.involved_object.field_path.as_deref(),
            event.type_.as_deref(),
            event.reason.as_deref(),
            event.message.as_deref(),
        ],
    )
}

/// Whose budget an event spends: its source's for its object (client-go's
/// getSpamKey).
fn spam_key(event: &Event) -> String {
    key("spam", event, &[])
}

/// A key of `kind` from what every key takes of an event (its source and
/// object) and `more`, joined by a byte no name or message holds, so that
/// different parts never make the same key.
fn key(kind: &str, event: &Event, more: &[Option<&str>]) -> String {
    let object = &event.involved_object;
    let source = event.source.as_ref();
    let shared = [
        source.and_then(|s| s.component.as_deref()),
        source.and_then(|s| s.host.as_deref()),
        object.kind.as_deref(),
        object.namespace.as_deref(),
        object.name.as_deref(),
        object.uid.as_deref(),
        object.api_version.as_deref(),
    ];
    let mut parts = vec![kind];
    parts.extend(shared.iter().chain(more).map(|p| p.unwrap_or_default()));
    parts.join("\0")
}

/// The cache's entry for `key`, made when it has none (the least recently
/// used key making room).
fn entry<T: Default>(
    cache: &mut LruCache<String, Used<T>>,
    key: String,
    now: Timestamp,
) -> &mut Used<T> {
    cache.get_or_insert_mut(key, || Used {
        value: T::default(),
        at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(pod: &str, message: &str) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": "x", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": pod, "uid": "u1"},
            "reason": "FailedScheduling",
            "message": message,
            "type": "Warning",
            "source": {"component": "default-scheduler"},
        }))
        .unwrap()
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    #[test]
    fn the_same_event_joins_its_series_and_another_message_or_object_does_not() {
        let mut correlator = Correlator::default();
        let first = correlator
            .correlate(&mut event("web", "0/1 nodes"), at(0))
            .series;
        let again = correlator
            .correlate(&mut event("web", "0/1 nodes"), at(30))
            .series;
        assert!(Arc::ptr_eq(&first, &again));
        let other_message = correlator
            .correlate(&mut event("web", "0/2 nodes"), at(31))
            .series;
        assert!(!Arc::ptr_eq(&first, &other_message));
        let other_pod = correlator
            .correlate(&mut event("db", "0/1 nodes"), at(32))
            .series;
        assert!(!Arc::ptr_eq(&first, &other_pod));
    }

    #[test]
    fn a_series_continues_for_ten_minutes_after_its_last_event() {
        let last = Written {
            name: "web.1".to_owned(),
            count: 3,
            last: at(0),
        };
        assert!(last.continues_at(at(600)));
        assert!(!last.continues_at(at(601)));
    }

    #[test]
    fn the_tenth_different_message_of_similar_events_is_combined_and_so_are_the_next() {
        let mut correlator = Correlator::default();
        let mut apart = Vec::new();
        for n in 0..9 {
            let mut e = event("web", &format!("attempt {n}"));
            apart.push(correlator.correlate(&mut e, at(n)).series);
            assert_eq!(e.message.unwrap(), format!("attempt {n}"));
        }
        let mut tenth = event("web", "attempt 9");
        let combined = correlator.correlate(&mut tenth, at(9)).series;
        assert_eq!(tenth.message.unwrap(), format!("{COMBINED}attempt 9"));
        assert!(apart.iter().all(|s| !Arc::ptr_eq(s, &combined)));
        let mut eleventh = event("web", "attempt 10");
        let again = correlator.correlate(&mut eleventh, at(10)).series;
        assert_eq!(eleventh.message.unwrap(), format!("{COMBINED}attempt 10"));
        assert!(Arc::ptr_eq(&combined, &again));

        // Another pod's events are not similar to these.
        let mut other = event("db", "attempt 11");
        correlator.correlate(&mut other, at(11));
        assert_eq!(other.message.unwrap(), "attempt 11");
    }

    #[test]
    fn similar_messages_are_counted_afresh_after_ten_quiet_minutes() {
        let mut correlator = Correlator::default();
        for n in 0..9 {
            correlator.correlate(&mut event("web", &format!("attempt {n}")), at(n));
        }
        let mut late = event("web", "attempt 9");
        correlator.correlate(&mut late, at(8 + 601));
        assert_eq!(late.message.unwrap(), "attempt 9");
    }

    #[test]
    fn a_full_cache_forgets_the_least_recently_used_key() {
        let mut correlator = Correlator::default();
        let pod = |n: usize| event(&format!("pod-{n}"), "m");
        let ms = |n: usize| at(0) + SignedDuration::from_millis(n as i64);
        let first: Vec<Series> = (0..MAX_KEYS.get())
            .map(|n| correlator.correlate(&mut pod(n), ms(n)).series)
            .collect();
        // Used again, pod-0 is no longer the least recently used: pod-1 is.
        let kept = correlator.correlate(&mut pod(0), ms(MAX_KEYS.get())).series;
        assert!(Arc::ptr_eq(&first[0], &kept));
        correlator.correlate(&mut event("new", "m"), ms(MAX_KEYS.get() + 1));
        assert_eq!(correlator.series.len(), MAX_KEYS.get());
        let pod_0 = correlator
            .correlate(&mut pod(0), ms(MAX_KEYS.get() + 2))
            .series;
        assert!(Arc::ptr_eq(&first[0], &pod_0));
        let pod_1 = correlator
            .correlate(&mut pod(1), ms(MAX_KEYS.get() + 3))
            .series;
        assert!(!Arc::ptr_eq(&first[1], &pod_1));
    }

    #[test]
    fn a_source_may_send_25_events_about_an_object_then_one_every_5_minutes() {
        let mut correlator = Correlator::default();
        let mut spam = |pod: &str, reason: &str, seconds: i64| {
            let mut e = event(pod, "m");
            e.reason = Some(reason.to_owned());
            correlator.correlate(&mut e, at(seconds)).spam
        };
        // Any event about the object spends its source's budget, whatever
        // its reason or message.
        for n in 0..25 {
            assert!(!spam("web", &format!("Reason{}", n % 3), n), "event {n}");
        }
        assert!(spam("web", "Reason0", 25));
        assert!(!spam("db", "Reason0", 26), "another object has its own");
        // One token back 5 minutes after the burst began, none before.
        assert!(spam("web", "Reason1", 299));
        assert!(!spam("web", "Reason1", 300));
        assert!(spam("web", "Reason1", 301));
        // A long quiet earns the burst back, and no more.
        for n in 0..25 {
            assert!(!spam("web", "Reason2", 100_000 + n), "event {n}");
        }
        assert!(spam("web", "Reason2", 100_025));
    }

    #[test]
    fn without_the_filter_no_event_is_spam() {
        let mut correlator = Correlator::without_spam_filter();
        for n in 0..30 {
            assert!(!correlator.correlate(&mut event("web", "m"), at(n)).spam);
        }
    }

    #[test]
    fn another_source_has_its_own_budget_for_the_object() {
        let mut correlator = Correlator::default();
        for n in 0..25 {
            assert!(!correlator.correlate(&mut event("web", "m"), at(n)).spam);
        }
        assert!(correlator.correlate(&mut event("web", "m"), at(25)).spam);
        let mut kubelet = event("web", "m");
        kubelet.source.as_mut().unwrap().component = Some("kubelet".to_owned());
        assert!(!correlator.correlate(&mut kubelet, at(26)).spam);
    }
}

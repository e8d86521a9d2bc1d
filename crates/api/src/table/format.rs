//! Cell formats shared by the printers, as apimachinery and the printers
//! package spell them.

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::selector::LabelSelector;

/// `duration.HumanDuration`: the short, rounded-down age kubectl shows.
pub fn human_duration(seconds: i64) -> String {
    // Up to a second in the future counts as now, tolerating clock skew.
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

/// The instant a timestamp field holds, if set and well-formed.
pub fn timestamp(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_str).and_then(|s| s.parse().ok())
}

/// `translateTimestampSince`: how long ago, or `<unknown>` for an unset time.
pub fn since(v: Option<&Value>, now: Timestamp) -> String {
    match timestamp(v) {
        Some(t) => human_duration(now.duration_since(t).as_secs()),
        None => "<unknown>".into(),
    }
}

/// The AGE cell: time since `metadata.creationTimestamp`.
pub fn age(obj: &Value, now: Timestamp) -> String {
    since(obj.pointer("/metadata/creationTimestamp"), now)
}

/// `labels.FormatLabels`: `a=b,c=d` sorted by key, `<none>` when empty.
pub fn labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// `metav1.FormatLabelSelector`: the selector's string form, `<none>` when
/// it selects everything or nothing, `<error>` when malformed.
pub fn label_selector(selector: Option<&Value>) -> String {
    match LabelSelector::from_object(selector.unwrap_or(&Value::Null)) {
        Ok(s) => {
            let text = s.to_string();
            if text.is_empty() {
                "<none>".into()
            } else {
                text
            }
        }
        Err(_) => "<error>".into(),
    }
}

/// `layoutContainerCells`: container names and images, comma-joined.
pub fn containers(pod_spec: Option<&Value>) -> (String, String) {
    let list = array(pod_spec, "containers");
    let field = |name: &str| {
        list.iter()
            .map(|c| str_at(c, name))
            .collect::<Vec<_>>()
            .join(",")
    };
    (field("name"), field("image"))
}

/// Up to `max` items joined by commas, then ` + N more...`; `<unset>` when empty.
pub fn list_with_more(items: &[String], max: usize) -> String {
    if items.is_empty() {
        return "<unset>".into();
    }
    let shown = items[..items.len().min(max)].join(",");
    if items.len() > max {
        format!("{shown} + {} more...", items.len() - max)
    } else {
        shown
    }
}

/// A string at a JSON pointer (or a plain field name), "" when absent.
pub fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    at(v, pointer).and_then(Value::as_str).unwrap_or_default()
}

/// An integer at a JSON pointer (or a plain field name), 0 when absent.
pub fn int_at(v: &Value, pointer: &str) -> i64 {
    at(v, pointer).and_then(Value::as_i64).unwrap_or_default()
}

/// The array at a pointer (or a plain field name) under `v`, empty when absent.
pub fn array<'a>(v: Option<&'a Value>, pointer: &str) -> &'a [Value] {
    v.and_then(|v| at(v, pointer))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The object at a pointer, if any.
pub fn object<'a>(v: &'a Value, pointer: &str) -> Option<&'a Map<String, Value>> {
    at(v, pointer).and_then(Value::as_object)
}

pub fn at<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.starts_with('/') {
        v.pointer(pointer)
    } else {
        v.get(pointer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_as_kubectl_prints_them() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (5, "5s"),
            (119, "119s"),
            (182, "3m2s"),
            (180, "3m"),
            (600, "10m"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (10 * 3600, "10h"),
            (2 * 86400 + 3 * 3600, "2d3h"),
            (9 * 86400, "9d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn labels_and_selectors_print_sorted_or_none() {
        assert_eq!(labels(Some(&json!({"b": "2", "a": "1"}))), "a=1,b=2");
        assert_eq!(labels(None), "<none>");
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]});
        assert_eq!(label_selector(Some(&sel)), "app=web,tier in (a,b)");
        assert_eq!(label_selector(Some(&json!({}))), "<none>");
    }

    #[test]
    fn long_lists_are_cut_after_the_maximum() {
        let items: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).into();
        assert_eq!(list_with_more(&items, 3), "a,b,c + 2 more...");
        assert_eq!(list_with_more(&[], 3), "<unset>");
    }
}

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::CompactString;

/// Names to values, sorted by name, each name once: an alert's labels or
/// annotations, or an incident's common labels.
///
/// A sorted vector rather than a `BTreeMap`: an alert carries a handful of
/// labels, and a map's first node is about 540 bytes whatever it holds, made
/// on the thread that decodes the alert and freed on the incident actor's.
/// Lookups are binary searches. Names and values up to 24 bytes are kept
/// inline, so most cost no allocation of their own. Encoded as a map, in
/// name order, byte for byte as a `BTreeMap` of strings was.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(Vec<(CompactString, CompactString)>);

impl Labels {
    pub fn new() -> Self {
        Labels(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&CompactString> {
        self.position(name).ok().map(|i| &self.0[i].1)
    }

    /// Sets `name` to `value`; returns the value it replaced, if any. It
    /// moves the names after `name`: build many pairs at once with
    /// `collect`, which sorts once.
    pub fn insert(&mut self, name: CompactString, value: CompactString) -> Option<CompactString> {
        match self.position(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (name, value));
                None
            }
        }
    }

    /// Keeps the pairs `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&CompactString, &CompactString) -> bool) {
        self.0.retain(|(name, value)| keep(name, value));
    }

    /// Pairs in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&CompactString, &CompactString)> {
        self.into_iter()
    }

    /// Names in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &CompactString> {
        self.0.iter().map(|(name, _)| name)
    }

    /// `pairs` in any order; a name given twice keeps its last value, as a
    /// map it is inserted into would.
    fn from_pairs(mut pairs: Vec<(CompactString, CompactString)>) -> Self {
        if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            // Stable, so of equal names the last given stays last.
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            // `later` is dropped when its name equals the kept `earlier`'s,
            // after handing it the later value.
            pairs.dedup_by(|later, earlier| {
                let same = later.0 == earlier.0;
                if same {
                    std::mem::swap(&mut later.1, &mut earlier.1);
                }
                same
            });
        }
        Labels(pairs)
    }
}

impl FromIterator<(CompactString, CompactString)> for Labels {
    fn from_iter<I: IntoIterator<Item = (CompactString, CompactString)>>(pairs: I) -> Self {
        Labels::from_pairs(pairs.into_iter().collect())
    }
}

impl<const N: usize> From<[(CompactString, CompactString); N]> for Labels {
    fn from(pairs: [(CompactString, CompactString); N]) -> Self {
        Labels::from_pairs(pairs.into())
    }
}

/// The value of a name that must be there (as a map's index, it panics
/// when the name is missing).
impl std::ops::Index<&str> for Labels {
    type Output = CompactString;

    fn index(&self, name: &str) -> &CompactString {
        self.get(name)
            .unwrap_or_else(|| panic!("no label named {name:?}"))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = (&'a CompactString, &'a CompactString);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (CompactString, CompactString)>,
        fn(&'a (CompactString, CompactString)) -> (&'a CompactString, &'a CompactString),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(name, value)| (name, value))
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(LabelsVisitor)
    }
}

struct LabelsVisitor;

impl<'de> Visitor<'de> for LabelsVisitor {
    type Value = Labels;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of strings to strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
        // A size hint from the input is not trusted beyond the label limit.
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(super::MAX_LABELS));
        while let Some(pair) = map.next_entry()? {
            pairs.push(pair);
        }
        Ok(Labels::from_pairs(pairs))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn pairs(pairs: &[(&str, &str)]) -> Vec<(CompactString, CompactString)> {
        pairs.iter().map(|&(n, v)| (n.into(), v.into())).collect()
    }

    /// Whatever order and repeats the pairs come in, the labels hold what a
    /// map they were inserted into in that order holds, in the same order.
    #[test]
    fn pairs_in_any_order_make_what_a_map_would() {
        let given = pairs(&[
            ("job", "api"),
            ("alertname", "Down"),
            ("job", "db"),
            ("zone", "a"),
            ("alertname", "Up"),
            ("b", "1"),
        ]);
        let map: BTreeMap<_, _> = given.iter().cloned().collect();
        let labels: Labels = given.into_iter().collect();
        assert_eq!(
            labels.iter().collect::<Vec<_>>(),
            map.iter().collect::<Vec<_>>()
        );
        assert_eq!(labels.get("job").map(|v| v.as_str()), Some("db"));
        assert_eq!(labels.get("alertname").map(|v| v.as_str()), Some("Up"));
        assert_eq!(labels.get("missing"), None);
    }

    #[test]
    fn insert_keeps_names_sorted_and_replaces_a_value() {
        let mut labels = Labels::new();
        assert_eq!(labels.insert("m".into(), "1".into()), None);
        assert_eq!(labels.insert("a".into(), "2".into()), None);
        assert_eq!(labels.insert("z".into(), "3".into()), None);
        assert_eq!(labels.insert("m".into(), "4".into()), Some("1".into()));
        assert_eq!(
            labels,
            Labels::from_iter(pairs(&[("a", "2"), ("m", "4"), ("z", "3")]))
        );
        labels.retain(|name, _| name != "m");
        assert_eq!(labels.keys().collect::<Vec<_>>(), ["a", "z"]);
    }

    /// Stored incidents, stream records and API bodies written when labels
    /// were a `BTreeMap` of `String`s read the same, and are written the
    /// same, in bincode and in JSON; unsorted JSON is read sorted.
    #[test]
    fn encoded_as_a_map_of_strings_was() {
        let long = "v".repeat(40);
        let given = [("instance", long.as_str()), ("alertname", "Down")];
        let labels: Labels = pairs(&given).into_iter().collect();
        let plain: BTreeMap<String, String> = given
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&plain, config).unwrap();
        assert_eq!(
            bincode::serde::encode_to_vec(&labels, config).unwrap(),
            bytes
        );
        let (read, _): (Labels, _) = bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(read, labels);
        assert_eq!(
            serde_json::to_string(&labels).unwrap(),
            serde_json::to_string(&plain).unwrap()
        );
        let unsorted: Labels =
            serde_json::from_str(&format!(r#"{{"instance": "{long}", "alertname": "Down"}}"#))
                .unwrap();
        assert_eq!(unsorted, labels);
        let error = serde_json::from_str::<Labels>(r#"{"a": 1}"#).unwrap_err();
        assert!(error.to_string().contains("expected a string"), "{error}");
    }
}

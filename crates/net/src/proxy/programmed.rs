//! What the table holds, Service by Service: each Service's ports and the
//! rules rendered from them, and for each map element the Services that
//! claim it. A change to some Services yields what the table held and
//! must hold for those alone, so a batch never looks at the others.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::model::{ServiceKey, ServicePort};
use super::rules::{Contents, Map};

/// The most elements a map may hold to be emptied and filled again whole
/// in a batch rather than lose elements one by one: nft (1.0.6) reads
/// every chain on the host before any `delete` (a third of a second at
/// 10,000 Services), and refilling a thousand elements takes far less.
const REFILL_LIMIT: usize = 1_000;

/// One Service's ports and their rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub ports: Vec<ServicePort>,
    pub contents: Contents,
}

/// What a change to some Services does to the table.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Their chains and sets as they were, and the elements they touch.
    pub old: Contents,
    /// The same, as they are to be.
    pub new: Contents,
    pub old_ports: Vec<ServicePort>,
    pub new_ports: Vec<ServicePort>,
    /// Maps to empty and fill again with all their elements (those of
    /// `new`, which holds every one of theirs) instead of deleting some.
    pub refill: BTreeSet<Map>,
}

impl Change {
    /// Some element of `map` goes, or gets another verdict.
    fn loses_elements_of(&self, map: Map) -> bool {
        self.old
            .elements
            .iter()
            .any(|(key, verdict)| key.0 == map && self.new.elements.get(key) != Some(verdict))
    }
}

/// Every Service with rules in the table.
#[derive(Debug, Default)]
pub struct Programmed {
    services: HashMap<ServiceKey, Rendered>,
    /// Each element's verdict by the Services claiming it. Two Services may
    /// claim one key (the same external address and port): the first by
    /// namespace and name has it, the other takes over if it goes.
    claims: BTreeMap<(Map, String), BTreeMap<ServiceKey, String>>,
}

impl Programmed {
    pub fn keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.services.keys()
    }

    /// The ports `key`'s rules were rendered from; none for a Service
    /// without rules.
    pub fn ports(&self, key: &ServiceKey) -> &[ServicePort] {
        self.services
            .get(key)
            .map(|r| r.ports.as_slice())
            .unwrap_or_default()
    }

    pub fn port_count(&self) -> usize {
        self.services.values().map(|r| r.ports.len()).sum()
    }

    /// Records the Services' new rules (`None`: the Service has none any
    /// more) and returns what that changes in the table.
    pub fn apply(&mut self, updates: Vec<(ServiceKey, Option<Rendered>)>) -> Change {
        let touched: BTreeSet<(Map, String)> = updates
            .iter()
            .flat_map(|(key, new)| self.services.get(key).into_iter().chain(new))
            .flat_map(|rendered| rendered.contents.elements.keys().cloned())
            .collect();
        let mut change = Change {
            old: Contents {
                elements: self.winners(&touched),
                ..Contents::default()
            },
            ..Change::default()
        };
        for (key, new) in updates {
            if let Some(old) = self.services.remove(&key) {
                self.release(&key, &old.contents);
                change.old.add_chains_and_sets(&old.contents);
                change.old_ports.extend(old.ports);
            }
            if let Some(new) = new {
                self.claim(&key, &new.contents);
                change.new.add_chains_and_sets(&new.contents);
                change.new_ports.extend(new.ports.iter().cloned());
                self.services.insert(key, new);
            }
        }
        change.new.elements = self.winners(&touched);
        for map in Map::ALL {
            if !change.loses_elements_of(map) {
                continue;
            }
            let keys: Vec<&(Map, String)> = self.claims.keys().filter(|(m, _)| *m == map).collect();
            if keys.len() <= REFILL_LIMIT {
                let keys: BTreeSet<(Map, String)> = keys.into_iter().cloned().collect();
                change.new.elements.extend(self.winners(&keys));
                change.refill.insert(map);
            }
        }
        change
    }

    /// Everything, for a whole replacement of the table.
    pub fn contents(&self) -> Contents {
        let mut all = Contents::default();
        for rendered in self.services.values() {
            all.add_chains_and_sets(&rendered.contents);
        }
        all.elements = self
            .claims
            .iter()
            .filter_map(|(key, claimants)| Some((key.clone(), claimants.values().next()?.clone())))
            .collect();
        all
    }

    /// The verdict each of `keys` has, if any Service claims it.
    fn winners(&self, keys: &BTreeSet<(Map, String)>) -> BTreeMap<(Map, String), String> {
        keys.iter()
            .filter_map(|key| {
                let verdict = self.claims.get(key)?.values().next()?;
                Some((key.clone(), verdict.clone()))
            })
            .collect()
    }

    fn claim(&mut self, service: &ServiceKey, contents: &Contents) {
        for (key, verdict) in &contents.elements {
            self.claims
                .entry(key.clone())
                .or_default()
                .insert(service.clone(), verdict.clone());
        }
    }

    fn release(&mut self, service: &ServiceKey, contents: &Contents) {
        for key in contents.elements.keys() {
            if let Some(claimants) = self.claims.get_mut(key) {
                claimants.remove(service);
                if claimants.is_empty() {
                    self.claims.remove(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ServiceKey {
        ServiceKey {
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    /// A Service with one chain and one element of service-ips, no ports
    /// needed here.
    fn rendered(chain: &str, element: &str, verdict: &str) -> Rendered {
        Rendered {
            ports: Vec::new(),
            contents: Contents {
                chains: [(chain.to_owned(), vec![format!("# {chain}")])].into(),
                sets: BTreeSet::new(),
                elements: [((Map::ServiceIps, element.to_owned()), verdict.to_owned())].into(),
            },
        }
    }

    fn verdicts(contents: &Contents) -> Vec<&str> {
        contents.elements.values().map(String::as_str).collect()
    }

    /// A Service without endpoints: one element of no-endpoint-services.
    fn rejected(element: &str) -> Rendered {
        Rendered {
            ports: Vec::new(),
            contents: Contents {
                elements: [(
                    (Map::NoEndpointServices, element.to_owned()),
                    "goto reject-chain".to_owned(),
                )]
                .into(),
                ..Contents::default()
            },
        }
    }

    #[test]
    fn a_change_to_one_service_holds_nothing_of_the_others() {
        let mut programmed = Programmed::default();
        programmed.apply(vec![
            (
                key("a"),
                Some(rendered(
                    "service-a",
                    "10.43.0.1 . tcp . 80",
                    "goto service-a",
                )),
            ),
            (
                key("b"),
                Some(rendered(
                    "service-b",
                    "10.43.0.2 . tcp . 80",
                    "goto service-b",
                )),
            ),
        ]);
        let change = programmed.apply(vec![(
            key("a"),
            Some(rendered(
                "endpoint-a2",
                "10.43.0.1 . tcp . 80",
                "goto service-a",
            )),
        )]);
        assert_eq!(change.old.chains.keys().collect::<Vec<_>>(), ["service-a"]);
        assert_eq!(
            change.new.chains.keys().collect::<Vec<_>>(),
            ["endpoint-a2"]
        );
        assert_eq!(verdicts(&change.new), ["goto service-a"]);
        assert!(change.refill.is_empty());
        let all = programmed.contents();
        assert_eq!(
            all.chains.keys().collect::<Vec<_>>(),
            ["endpoint-a2", "service-b"]
        );
        assert_eq!(all.elements.len(), 2);
    }

    #[test]
    fn a_shared_address_goes_to_the_other_service_when_its_holder_goes() {
        let mut programmed = Programmed::default();
        let shared = "192.0.2.2 . tcp . 80";
        programmed.apply(vec![
            (
                key("b"),
                Some(rendered("external-b", shared, "goto external-b")),
            ),
            (
                key("a"),
                Some(rendered("external-a", shared, "goto external-a")),
            ),
        ]);
        assert_eq!(
            verdicts(&programmed.contents()),
            ["goto external-a"],
            "the first by name holds it"
        );
        let change = programmed.apply(vec![(key("a"), None)]);
        assert_eq!(verdicts(&change.old), ["goto external-a"]);
        assert_eq!(verdicts(&change.new), ["goto external-b"]);
        assert!(change.new.chains.is_empty());
        let change = programmed.apply(vec![(key("b"), None)]);
        assert!(change.new.elements.is_empty());
        assert!(programmed.contents() == Contents::default());
    }

    #[test]
    fn a_small_map_losing_an_element_is_refilled_whole_a_large_one_is_not() {
        let mut programmed = Programmed::default();
        let mut services = vec![
            (key("idle"), Some(rejected("10.43.0.9 . tcp . 80"))),
            (key("waking"), Some(rejected("10.43.0.1 . tcp . 80"))),
        ];
        for i in 0..=REFILL_LIMIT {
            let ip = format!("10.43.{}.{} . tcp . 80", 1 + i / 250, i % 250);
            services.push((
                key(&format!("busy-{i}")),
                Some(rendered("c", &ip, "goto c")),
            ));
        }
        programmed.apply(services);
        let change = programmed.apply(vec![(
            key("waking"),
            Some(rendered(
                "service-waking",
                "10.43.0.1 . tcp . 80",
                "goto service-waking",
            )),
        )]);
        assert_eq!(change.refill, BTreeSet::from([Map::NoEndpointServices]));
        let rejected: Vec<&String> = change
            .new
            .elements
            .keys()
            .filter(|(m, _)| *m == Map::NoEndpointServices)
            .map(|(_, key)| key)
            .collect();
        assert_eq!(
            rejected,
            ["10.43.0.9 . tcp . 80"],
            "the other Service's element too"
        );

        let change = programmed.apply(vec![(key("busy-0"), None)]);
        assert!(
            change.refill.is_empty(),
            "service-ips holds more than the limit"
        );
        assert_eq!(change.new.elements.len(), 0);
    }
}

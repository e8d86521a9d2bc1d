//! The proxy's own nftables table: its fixed frame (hooks, dispatch maps,
//! masquerading) and the `nft -f` batches that bring the Services'
//! [`Contents`] into it, either all at once or as the difference from what
//! it holds.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::rules::{Contents, MARK_MASQ_CHAIN, Map, REJECT_CHAIN};

/// The packet mark that asks for masquerading, kube-proxy's bit.
const MASQ_MARK: &str = "0x4000";

/// One `ip` table of the proxy's.
#[derive(Clone, Debug)]
pub struct Table {
    name: String,
    comment: String,
}

impl Table {
    /// `comment` says whose table it is, for a person reading `nft list ruleset`.
    pub fn new(name: impl Into<String>, comment: &str) -> Self {
        Self {
            name: name.into(),
            // nft strings cannot hold a double quote.
            comment: comment.replace('"', "'"),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A batch that leaves the table holding its frame and `contents`,
    /// whatever it held before (or if it did not exist), in one
    /// transaction: packets never see it empty or half made, and
    /// connections already tracked keep their translations.
    pub fn replace(&self, contents: &Contents) -> String {
        let mut batch = self.delete();
        self.write_frame(&mut batch);
        batch.push_str(&self.update(
            &Contents::default(),
            contents,
            &BTreeSet::new(),
            &mut BTreeSet::new(),
        ));
        batch
    }

    /// A batch that removes the table, and does nothing when it is absent
    /// (`delete` alone would fail then).
    pub fn delete(&self) -> String {
        format!("add table ip {0}\ndelete table ip {0}\n", self.name)
    }

    /// The batch that turns a table holding `old` into one holding `new`:
    /// only the chains, sets and elements that differ are touched. Empty
    /// when nothing differs.
    ///
    /// nft (1.0.6) reads every chain on the host before a batch holding an
    /// `add rule`, an `add element` or any `delete`: a third of a second at
    /// 10,000 Services. So a chain is written whole (`add chain` with its
    /// rules), elements go in through their map's declaration, the maps in
    /// `refill` are emptied and filled again with all of `new`'s elements
    /// of theirs rather than lose some, and a chain that goes is only
    /// emptied: it joins `stale_chains`, which are deleted by the next
    /// batch that must delete something anyway.
    pub fn update(
        &self,
        old: &Contents,
        new: &Contents,
        refill: &BTreeSet<Map>,
        stale_chains: &mut BTreeSet<String>,
    ) -> String {
        let t = &self.name;
        let mut batch = String::new();
        // Every set of the Services written, not only new ones: nft finds a
        // set a rule names only if this batch declares it.
        for set in &new.sets {
            writeln!(
                batch,
                "add set ip {t} {set} {{ type ipv4_addr; flags dynamic,timeout; }}"
            )
            .unwrap();
        }
        let written: Vec<(&String, &Vec<String>)> = new
            .chains
            .iter()
            .filter(|(chain, rules)| old.chains.get(*chain) != Some(rules))
            .collect();
        // All chains exist, empty, before any rule jumps to one.
        for (chain, _) in &written {
            stale_chains.remove(*chain);
            let verb = if old.chains.contains_key(*chain) {
                "flush"
            } else {
                "add"
            };
            writeln!(batch, "{verb} chain ip {t} {chain}").unwrap();
        }
        for (chain, rules) in &written {
            writeln!(
                batch,
                "add chain ip {t} {chain} {{ {}; }}",
                rules.join("; ")
            )
            .unwrap();
        }
        // Elements whose verdict changed go, then come back with the new
        // one: deletions first.
        let mut deletes = false;
        for map in refill {
            writeln!(batch, "flush map ip {t} {}", map.name()).unwrap();
        }
        for map in Map::ALL.into_iter().filter(|m| !refill.contains(m)) {
            let gone: Vec<&str> = old
                .elements
                .iter()
                .filter(|((m, key), verdict)| {
                    *m == map && new.elements.get(&(map, key.clone())) != Some(*verdict)
                })
                .map(|((_, key), _)| key.as_str())
                .collect();
            if !gone.is_empty() {
                deletes = true;
                writeln!(
                    batch,
                    "delete element ip {t} {} {{ {} }}",
                    map.name(),
                    gone.join(", ")
                )
                .unwrap();
            }
        }
        for map in Map::ALL {
            let added: Vec<String> = new
                .elements
                .iter()
                .filter(|((m, key), verdict)| {
                    *m == map
                        && (refill.contains(&map)
                            || old.elements.get(&(map, key.clone())) != Some(*verdict))
                })
                .map(|((_, key), verdict)| format!("{key} : {verdict}"))
                .collect();
            if !added.is_empty() {
                writeln!(
                    batch,
                    "add map ip {t} {} {{ type {} : verdict; elements = {{ {} }}; }}",
                    map.name(),
                    map.key_type(),
                    added.join(", ")
                )
                .unwrap();
            }
        }
        for chain in old.chains.keys() {
            if !new.chains.contains_key(chain) {
                writeln!(batch, "flush chain ip {t} {chain}").unwrap();
                stale_chains.insert(chain.clone());
            }
        }
        let gone_sets: Vec<&String> = old.sets.difference(&new.sets).collect();
        if deletes || !gone_sets.is_empty() {
            batch.push_str(&self.delete_chains(stale_chains));
            stale_chains.clear();
            for set in gone_sets {
                writeln!(batch, "delete set ip {t} {set}").unwrap();
            }
        }
        batch
    }

    /// A batch that deletes `chains`, emptied by earlier batches or
    /// before this one in the same batch, so no rule jumps to them.
    pub fn delete_chains(&self, chains: &BTreeSet<String>) -> String {
        chains
            .iter()
            .map(|chain| format!("delete chain ip {} {chain}\n", self.name))
            .collect()
    }

    /// The fixed part: hooks, dispatch maps and the helper chains. Filter
    /// chains run before DNAT (priority -110) so that they see the Service
    /// address; they reject only new connections, so established ones are
    /// never cut by a change of rules.
    fn write_frame(&self, batch: &mut String) {
        let maps: String = Map::ALL
            .iter()
            .map(|m| {
                format!(
                    "\tmap {} {{ type {} : verdict; }}\n",
                    m.name(),
                    m.key_type()
                )
            })
            .collect();
        let hook = |name: &str, kind: &str, hook: &str, priority: &str, jump: &str| {
            format!(
                "\tchain {name} {{ type {kind} hook {hook} priority {priority}; policy accept; {jump}; }}\n"
            )
        };
        let endpoints_check = "ct state new jump endpoints-check";
        let hooks = [
            hook("filter-input", "filter", "input", "-110", endpoints_check),
            hook(
                "filter-forward",
                "filter",
                "forward",
                "-110",
                endpoints_check,
            ),
            hook("filter-output", "filter", "output", "-110", endpoints_check),
            hook(
                "nat-prerouting",
                "nat",
                "prerouting",
                "-100",
                "jump services",
            ),
            hook("nat-output", "nat", "output", "-100", "jump services"),
            hook(
                "nat-postrouting",
                "nat",
                "postrouting",
                "100",
                "jump masquerading",
            ),
        ]
        .concat();
        // NodePorts answer on the node's addresses but not on 127.0.0.1,
        // as in kube-proxy's nftables mode (DNAT from loopback would need
        // route_localnet).
        let node_ports = "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport";
        writeln!(
            batch,
            r#"table ip {name} {{
	comment "{comment}"
{maps}{hooks}	chain endpoints-check {{
		ip daddr . meta l4proto . th dport vmap @{no_ep_services}
		{node_ports} vmap @{no_ep_node_ports}
	}}
	chain services {{
		ip daddr . meta l4proto . th dport vmap @{service_ips}
		{node_ports} vmap @{service_node_ports}
	}}
	chain masquerading {{
		meta mark & {MASQ_MARK} == 0 return
		meta mark set meta mark ^ {MASQ_MARK}
		masquerade fully-random
	}}
	chain {MARK_MASQ_CHAIN} {{ meta mark set meta mark | {MASQ_MARK}; }}
	chain {REJECT_CHAIN} {{ reject; }}
}}"#,
            name = self.name,
            comment = self.comment,
            no_ep_services = Map::NoEndpointServices.name(),
            no_ep_node_ports = Map::NoEndpointNodePorts.name(),
            service_ips = Map::ServiceIps.name(),
            service_node_ports = Map::ServiceNodePorts.name(),
        )
        .unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(chains: &[(&str, &[&str])], elements: &[(Map, &str, &str)]) -> Contents {
        Contents {
            chains: chains
                .iter()
                .map(|(name, rules)| {
                    (
                        (*name).to_owned(),
                        rules.iter().map(|r| (*r).to_owned()).collect(),
                    )
                })
                .collect(),
            sets: Default::default(),
            elements: elements
                .iter()
                .map(|(map, key, verdict)| ((*map, (*key).to_owned()), (*verdict).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn an_unchanged_table_needs_no_batch() {
        let table = Table::new("t", "test");
        let both = contents(
            &[("service-a", &["numgen random mod 1 vmap { 0 : goto e }"])],
            &[(Map::ServiceIps, "10.43.0.5 . tcp . 80", "goto service-a")],
        );
        assert_eq!(
            table.update(&both, &both, &BTreeSet::new(), &mut BTreeSet::new()),
            ""
        );
    }

    #[test]
    fn only_what_changed_is_rewritten_in_dependency_order() {
        let table = Table::new("t", "test");
        let old = contents(
            &[
                ("service-a", &["goto endpoint-a1"]),
                ("endpoint-a1", &["dnat to 10.42.0.5:80"]),
                ("service-b", &["goto endpoint-b1"]),
                ("endpoint-b1", &["dnat to 10.42.0.9:80"]),
            ],
            &[
                (Map::ServiceIps, "10.43.0.5 . tcp . 80", "goto service-a"),
                (Map::ServiceIps, "10.43.0.6 . tcp . 80", "goto service-b"),
            ],
        );
        let new = contents(
            &[
                (
                    "service-a",
                    &["ip saddr 10.42.0.6 return", "goto endpoint-a2"],
                ),
                ("endpoint-a2", &["dnat to 10.42.0.6:80"]),
                ("service-b", &["goto endpoint-b1"]),
                ("endpoint-b1", &["dnat to 10.42.0.9:80"]),
            ],
            &[
                (Map::ServiceIps, "10.43.0.6 . tcp . 80", "goto service-b"),
                (
                    Map::NoEndpointServices,
                    "10.43.0.7 . udp . 53",
                    "goto reject-chain",
                ),
                (Map::ServiceIps, "10.43.0.5 . tcp . 80", "goto local-a"),
            ],
        );
        // Emptied by earlier batches: one comes back, the other goes now.
        let mut stale = BTreeSet::from(["endpoint-a2".to_owned(), "endpoint-z".to_owned()]);
        assert_eq!(
            table.update(&old, &new, &BTreeSet::new(), &mut stale),
            "add chain ip t endpoint-a2
flush chain ip t service-a
add chain ip t endpoint-a2 { dnat to 10.42.0.6:80; }
add chain ip t service-a { ip saddr 10.42.0.6 return; goto endpoint-a2; }
delete element ip t service-ips { 10.43.0.5 . tcp . 80 }
add map ip t service-ips { type ipv4_addr . inet_proto . inet_service : verdict; elements = { 10.43.0.5 . tcp . 80 : goto local-a }; }
add map ip t no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict; elements = { 10.43.0.7 . udp . 53 : goto reject-chain }; }
flush chain ip t endpoint-a1
delete chain ip t endpoint-a1
delete chain ip t endpoint-z
"
        );
        assert!(stale.is_empty());
    }

    #[test]
    fn a_batch_that_deletes_no_element_only_empties_chains_that_go() {
        let table = Table::new("t", "test");
        let old = contents(
            &[
                (
                    "service-a",
                    &[
                        "numgen random mod 2 == 0 goto endpoint-a1",
                        "goto endpoint-a2",
                    ],
                ),
                ("endpoint-a1", &["dnat to 10.42.0.5:80"]),
                ("endpoint-a2", &["dnat to 10.42.0.6:80"]),
            ],
            &[(Map::ServiceIps, "10.43.0.5 . tcp . 80", "goto service-a")],
        );
        let mut new = contents(
            &[
                ("service-a", &["goto endpoint-a2"]),
                ("endpoint-a2", &["dnat to 10.42.0.6:80"]),
            ],
            &[
                (Map::ServiceIps, "10.43.0.5 . tcp . 80", "goto service-a"),
                (Map::ServiceNodePorts, "tcp . 30001", "goto service-a"),
            ],
        );
        new.sets.insert("affinity-a2".into());
        let mut stale = BTreeSet::new();
        let batch = table.update(&old, &new, &BTreeSet::new(), &mut stale);
        assert_eq!(
            batch,
            "add set ip t affinity-a2 { type ipv4_addr; flags dynamic,timeout; }
flush chain ip t service-a
add chain ip t service-a { goto endpoint-a2; }
add map ip t service-nodeports { type inet_proto . inet_service : verdict; elements = { tcp . 30001 : goto service-a }; }
flush chain ip t endpoint-a1
"
        );
        // None of the commands for which nft reads every chain first.
        assert!(
            batch.lines().all(|l| !l.starts_with("add rule")
                && !l.starts_with("add element")
                && !l.starts_with("delete")),
            "{batch}"
        );
        assert_eq!(stale, BTreeSet::from(["endpoint-a1".to_owned()]));
    }

    #[test]
    fn a_refilled_map_is_emptied_and_filled_again_whole() {
        let table = Table::new("t", "test");
        let reject = "goto reject-chain";
        let old = contents(
            &[],
            &[
                (Map::NoEndpointServices, "10.43.0.7 . tcp . 80", reject),
                (Map::NoEndpointServices, "10.43.0.8 . tcp . 80", reject),
            ],
        );
        let new = contents(
            &[],
            &[(Map::NoEndpointServices, "10.43.0.8 . tcp . 80", reject)],
        );
        let mut stale = BTreeSet::from(["endpoint-z".to_owned()]);
        let refill = BTreeSet::from([Map::NoEndpointServices]);
        assert_eq!(
            table.update(&old, &new, &refill, &mut stale),
            "flush map ip t no-endpoint-services
add map ip t no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict; elements = { 10.43.0.8 . tcp . 80 : goto reject-chain }; }
"
        );
        assert_eq!(stale.len(), 1, "nothing deleted, so emptied chains wait");
    }

    #[test]
    fn a_replacement_deletes_and_rebuilds_the_table_in_one_batch() {
        let table = Table::new("tugboat-x", "node \"n\"");
        let batch = table.replace(&contents(
            &[("service-a", &["goto endpoint-a1"])],
            &[(Map::ServiceIps, "10.43.0.5 . tcp . 80", "goto service-a")],
        ));
        assert!(batch.starts_with("add table ip tugboat-x\ndelete table ip tugboat-x\ntable ip tugboat-x {\n\tcomment \"node 'n'\""));
        let frame_end = batch.find("\n}\n").unwrap();
        assert!(batch[frame_end..].contains("add chain ip tugboat-x service-a\nadd chain ip tugboat-x service-a { goto endpoint-a1; }\n"));
        assert!(batch.ends_with(
            "add map ip tugboat-x service-ips { type ipv4_addr . inet_proto . inet_service : verdict; elements = { 10.43.0.5 . tcp . 80 : goto service-a }; }\n"
        ));
    }
}

//! The proxy's own nftables table: its fixed frame (hooks, dispatch maps,
//! masquerading) and the `nft -f` batches that bring the Services'
//! [`Contents`] into it, either all at once or as the difference from what
//! it holds.

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
        batch.push_str(&self.update(&Contents::default(), contents));
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
    pub fn update(&self, old: &Contents, new: &Contents) -> String {
        let t = &self.name;
        let mut batch = String::new();
        for set in new.sets.difference(&old.sets) {
            writeln!(
                batch,
                "add set ip {t} {set} {{ type ipv4_addr; flags dynamic,timeout; }}"
            )
            .unwrap();
        }
        for chain in new.chains.keys() {
            if !old.chains.contains_key(chain) {
                writeln!(batch, "add chain ip {t} {chain}").unwrap();
            }
        }
        for (chain, rules) in &new.chains {
            match old.chains.get(chain) {
                Some(old_rules) if old_rules == rules => continue,
                Some(_) => writeln!(batch, "flush chain ip {t} {chain}").unwrap(),
                None => {}
            }
            for rule in rules {
                writeln!(batch, "add rule ip {t} {chain} {rule}").unwrap();
            }
        }
        // Elements whose verdict changed go, then come back with the new
        // one: deletions first.
        for map in Map::ALL {
            let gone: Vec<&str> = old
                .elements
                .iter()
                .filter(|((m, key), verdict)| {
                    *m == map && new.elements.get(&(map, key.clone())) != Some(*verdict)
                })
                .map(|((_, key), _)| key.as_str())
                .collect();
            if !gone.is_empty() {
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
                    *m == map && old.elements.get(&(map, key.clone())) != Some(*verdict)
                })
                .map(|((_, key), verdict)| format!("{key} : {verdict}"))
                .collect();
            if !added.is_empty() {
                writeln!(
                    batch,
                    "add element ip {t} {} {{ {} }}",
                    map.name(),
                    added.join(", ")
                )
                .unwrap();
            }
        }
        // Chains that go may jump to each other: all are emptied before
        // any is deleted.
        let gone: Vec<&String> = old
            .chains
            .keys()
            .filter(|chain| !new.chains.contains_key(*chain))
            .collect();
        for chain in &gone {
            writeln!(batch, "flush chain ip {t} {chain}").unwrap();
        }
        for chain in &gone {
            writeln!(batch, "delete chain ip {t} {chain}").unwrap();
        }
        for set in old.sets.difference(&new.sets) {
            writeln!(batch, "delete set ip {t} {set}").unwrap();
        }
        batch
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
        assert_eq!(table.update(&both, &both), "");
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
                ("service-a", &["goto endpoint-a2"]),
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
        assert_eq!(
            table.update(&old, &new),
            "add chain ip t endpoint-a2
add rule ip t endpoint-a2 dnat to 10.42.0.6:80
flush chain ip t service-a
add rule ip t service-a goto endpoint-a2
delete element ip t service-ips { 10.43.0.5 . tcp . 80 }
add element ip t service-ips { 10.43.0.5 . tcp . 80 : goto local-a }
add element ip t no-endpoint-services { 10.43.0.7 . udp . 53 : goto reject-chain }
flush chain ip t endpoint-a1
delete chain ip t endpoint-a1
"
        );
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
        assert!(batch[frame_end..].contains("add chain ip tugboat-x service-a\n"));
        assert!(batch.ends_with(
            "add element ip tugboat-x service-ips { 10.43.0.5 . tcp . 80 : goto service-a }\n"
        ));
    }
}

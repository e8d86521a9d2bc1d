//! Cluster IPs and node ports of Services, allocated as kube-apiserver does.
//!
//! A Service of a type that needs one gets a free address of the service
//! CIDR (`--service-cidr`); NodePort and LoadBalancer Services get a free
//! port of the node port range for each of their ports (and, for a
//! LoadBalancer with `externalTrafficPolicy: Local`, a health check port).
//! Values a client asks for are honoured when they are in range and free.
//!
//! What a Service holds is kept in the store as one key per address and per
//! port (`/registry/ranges/serviceips/<ip>`,
//! `/registry/ranges/servicenodeports/<port>`, each holding `namespace/name`),
//! taken and released in the same transaction that writes the Service. The
//! transaction only succeeds if every key it takes was free, so an address is
//! never handed out twice, whatever races or crashes happen, and the keys and
//! the Services never disagree. [`repair`] checks them against each other at
//! start all the same, as kube-apiserver's repair loops do.
//!
//! Values are picked at random from the upper part of a range first: the
//! lower part (the "static band" of KEP-3070 and KEP-3668) is left for values
//! clients ask for, such as 10.43.0.10 for the cluster DNS.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use rand::RngExt;
use serde_json::{Value, json};
use tugboat_api::{ApiError, ApiResult, FieldError, Kind, meta, registry};
use tugboat_store::{KeyRange, Op, RangeOptions, Txn};

use crate::objects::{self, Holding, Holds, Objects, store_error};

const IP_KEYS: &str = "/registry/ranges/serviceips/";
const PORT_KEYS: &str = "/registry/ranges/servicenodeports/";
/// Where both kinds of keys live, for [`repair`].
const RANGE_KEYS: &str = "/registry/ranges/";
/// Picked values found taken before every held key is read to pick from.
const OPTIMISTIC_TRIES: usize = 8;

/// The ranges Services' cluster IPs and node ports come from.
#[derive(Clone, Debug)]
pub struct ServiceRanges {
    pub ips: IpRange,
    pub node_ports: PortRange,
}

/// The addresses of a service CIDR that can be handed out: all but the
/// network address and, for IPv4, the broadcast address.
#[derive(Clone, Copy, Debug)]
pub struct IpRange {
    cidr: IpNet,
    /// The first usable address, as a number.
    base: u128,
    /// How many addresses from `base` are usable.
    size: u64,
    /// How many of the first ones are left to clients asking for them.
    static_band: u64,
}

impl IpRange {
    pub fn new(cidr: IpNet) -> IpRange {
        let cidr = cidr.trunc();
        let host_bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
        // Kubernetes keeps a bitmap of the range, so it caps it at 2^16
        // addresses for IPv6; IPv4 ranges lose their broadcast address.
        let (total, size) = match cidr {
            IpNet::V4(_) => {
                let total = 1u64 << host_bits;
                (total, total.saturating_sub(2))
            }
            IpNet::V6(_) => {
                let total = 1u64.checked_shl(host_bits.min(63)).unwrap_or(u64::MAX);
                (total, total.min(1 << 16).saturating_sub(1))
            }
        };
        IpRange {
            cidr,
            base: address_number(cidr.network()) + 1,
            size,
            static_band: static_band(total, 16, 256, 16),
        }
    }

    /// The first address of the range: the `kubernetes` Service's.
    pub fn first(&self) -> IpAddr {
        self.address(0)
    }

    /// The address `offset` places after the first.
    fn address(&self, offset: u64) -> IpAddr {
        let number = self.base + u128::from(offset);
        match self.cidr {
            IpNet::V4(_) => IpAddr::V4((number as u32).into()),
            IpNet::V6(_) => IpAddr::V6(number.into()),
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.cidr.contains(&ip)
            && address_number(ip)
                .checked_sub(self.base)
                .is_some_and(|offset| offset < u128::from(self.size))
    }

    /// A free address, `taken` saying which are not.
    fn pick(&self, taken: impl Fn(&str) -> bool) -> Option<IpAddr> {
        pick_offset(self.size, self.static_band, |offset| {
            taken(&ip_key(self.address(offset)))
        })
        .map(|offset| self.address(offset))
    }
}

fn address_number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// A node port range, `30000-32767` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    fn size(&self) -> u64 {
        u64::from(self.last - self.first) + 1
    }

    fn contains(&self, port: i64) -> bool {
        (i64::from(self.first)..=i64::from(self.last)).contains(&port)
    }

    fn pick(&self, taken: impl Fn(&str) -> bool) -> Option<i64> {
        let size = self.size();
        let port = |offset: u64| i64::from(self.first) + offset as i64;
        pick_offset(size, static_band(size, 16, 128, 32), |offset| {
            taken(&port_key(port(offset)))
        })
        .map(port)
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange {
            first: 30000,
            last: 32767,
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a port range such as 30000-32767");
        let (first, last) = s.split_once('-').ok_or_else(bad)?;
        let first: u16 = first.trim().parse().map_err(|_| bad())?;
        let last: u16 = last.trim().parse().map_err(|_| bad())?;
        if first == 0 || last < first {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

/// Kubernetes' `calculateRangeOffset`: the size of the lower band a range
/// keeps for values clients ask for, `size / step` within `[min, max]`
/// (none for ranges of `min` or fewer).
fn static_band(size: u64, min: u64, max: u64, step: u64) -> u64 {
    if size <= min {
        0
    } else {
        (size / step).clamp(min, max)
    }
}

/// A free offset of `0..size`, `taken` saying which are not: from a random
/// start in the upper band first, then in the lower band.
fn pick_offset(size: u64, static_band: u64, taken: impl Fn(u64) -> bool) -> Option<u64> {
    let mut rng = rand::rng();
    let mut scan = |low: u64, high: u64| {
        if low >= high {
            return None;
        }
        let start = rng.random_range(low..high);
        (start..high)
            .chain(low..start)
            .find(|&offset| !taken(offset))
    };
    scan(static_band.min(size), size).or_else(|| scan(0, static_band.min(size)))
}

fn ip_key(ip: IpAddr) -> String {
    format!("{IP_KEYS}{ip}")
}

fn port_key(port: i64) -> String {
    format!("{PORT_KEYS}{port}")
}

/// Kinds whose writes go through this module.
pub fn allocates(kind: &Kind) -> bool {
    kind.group.is_empty() && kind.kind == "Service"
}

fn service_type(svc: &Value) -> &str {
    svc.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn needs_cluster_ip(svc: &Value) -> bool {
    service_type(svc) != "ExternalName"
}

fn needs_node_ports(svc: &Value) -> bool {
    matches!(service_type(svc), "NodePort" | "LoadBalancer")
}

/// Kubernetes' `NeedsHealthCheck`: a load balancer that only sends traffic
/// to nodes with endpoints asks each node on this port.
fn needs_health_check_port(svc: &Value) -> bool {
    service_type(svc) == "LoadBalancer"
        && svc
            .pointer("/spec/externalTrafficPolicy")
            .and_then(Value::as_str)
            == Some("Local")
}

fn str_at<'a>(svc: &'a Value, pointer: &str) -> &'a str {
    svc.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int_at(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn cluster_ips(svc: &Value) -> Vec<&str> {
    let ips: Vec<&str> = svc
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|ips| ips.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match str_at(svc, "/spec/clusterIP") {
        ip if ips.is_empty() && !ip.is_empty() => vec![ip],
        _ => ips,
    }
}

fn ports(svc: &Value) -> &[Value] {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn node_ports(svc: &Value) -> BTreeSet<i64> {
    ports(svc)
        .iter()
        .map(|p| int_at(p, "/nodePort"))
        .filter(|&n| n != 0)
        .collect()
}

/// The store keys of the addresses and ports a Service holds.
fn held_keys(svc: &Value) -> BTreeSet<String> {
    let ips = cluster_ips(svc)
        .into_iter()
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .map(ip_key);
    let health_check = int_at(svc, "/spec/healthCheckNodePort");
    let ports = node_ports(svc)
        .into_iter()
        .chain((health_check != 0).then_some(health_check))
        .map(port_key);
    ips.chain(ports).collect()
}

fn owner(svc: &Value) -> Vec<u8> {
    format!("{}/{}", meta::namespace(svc), meta::name(svc)).into_bytes()
}

/// What writing `new` over `old` takes and releases.
fn holds(old: Option<&Value>, new: Option<&Value>) -> Holds {
    let before = old.map(held_keys).unwrap_or_default();
    let after = new.map(held_keys).unwrap_or_default();
    Holds {
        take: new.map_or_else(Vec::new, |svc| {
            after
                .difference(&before)
                .map(|key| (key.clone(), owner(svc)))
                .collect()
        }),
        release: before.difference(&after).cloned().collect(),
        rewrite: Vec::new(),
    }
}

/// Gives `svc` what its type needs and it has not been given: a cluster IP,
/// node ports, a health check port. Values asked for that `old` did not
/// hold already must be in range. Returns the keys of the values picked;
/// `taken` says which are held elsewhere.
fn assign(
    ranges: &ServiceRanges,
    svc: &mut Value,
    old: Option<&Value>,
    taken: &HashSet<String>,
) -> ApiResult<HashSet<String>> {
    let before = old.map(held_keys).unwrap_or_default();
    let mut avoid: HashSet<String> = taken.iter().cloned().collect();
    avoid.extend(before.iter().cloned());
    avoid.extend(held_keys(svc));
    let mut picked = HashSet::new();
    if needs_cluster_ip(svc) {
        assign_cluster_ip(ranges, svc, &before, &mut avoid, &mut picked)?;
    }
    if needs_node_ports(svc) {
        assign_node_ports(ranges, svc, &before, &mut avoid, &mut picked)?;
    }
    if needs_health_check_port(svc) {
        assign_health_check_port(ranges, svc, &before, &mut avoid, &mut picked)?;
    }
    Ok(picked)
}

fn assign_cluster_ip(
    ranges: &ServiceRanges,
    svc: &mut Value,
    before: &BTreeSet<String>,
    avoid: &mut HashSet<String>,
    picked: &mut HashSet<String>,
) -> ApiResult<()> {
    let ip = match cluster_ips(svc).first().copied() {
        None | Some("") => {
            let ip = ranges.ips.pick(|key| avoid.contains(key)).ok_or_else(|| {
                ApiError::internal("failed to allocate a serviceIP: range is full")
            })?;
            picked.insert(ip_key(ip));
            avoid.insert(ip_key(ip));
            ip.to_string()
        }
        Some(ip) => {
            if let Ok(addr) = ip.parse::<IpAddr>()
                && !before.contains(&ip_key(addr))
                && !ranges.ips.contains(addr)
            {
                return Err(cluster_ip_error(
                    svc,
                    &format!(
                        "the provided IP ({addr}) is not in the valid range. The range of valid IPs is {}",
                        ranges.ips.cidr
                    ),
                ));
            }
            ip.to_owned()
        }
    };
    // `clusterIP` and `clusterIPs[0]` are one field in two versions.
    let spec = &mut svc["spec"];
    spec["clusterIP"] = json!(ip);
    match spec.get_mut("clusterIPs").and_then(Value::as_array_mut) {
        Some(ips) if !ips.is_empty() => ips[0] = json!(ip),
        _ => spec["clusterIPs"] = json!([ip]),
    }
    // The family follows the address, as kube-apiserver infers it.
    if let Ok(addr) = ip.parse::<IpAddr>() {
        let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
        match spec.get_mut("ipFamilies").and_then(Value::as_array_mut) {
            Some(families) if !families.is_empty() => families[0] = json!(family),
            _ => spec["ipFamilies"] = json!([family]),
        }
    }
    Ok(())
}

/// Every port gets a node port; ports with the same number (TCP and UDP of
/// one service port) share one, as in Kubernetes' `initNodePorts`. A
/// LoadBalancer with `allocateLoadBalancerNodePorts: false` only keeps the
/// ones asked for.
fn assign_node_ports(
    ranges: &ServiceRanges,
    svc: &mut Value,
    before: &BTreeSet<String>,
    avoid: &mut HashSet<String>,
    picked: &mut HashSet<String>,
) -> ApiResult<()> {
    let allocate = service_type(svc) == "NodePort"
        || svc.pointer("/spec/allocateLoadBalancerNodePorts") != Some(&json!(false));
    let mut by_port: HashMap<i64, i64> = HashMap::new();
    for (i, port) in ports(svc).iter().enumerate() {
        let node_port = int_at(port, "/nodePort");
        if node_port == 0 {
            continue;
        }
        if !may_hold(ranges, before, node_port) {
            return Err(node_port_error(
                svc,
                i,
                node_port,
                &not_in_port_range(&ranges.node_ports),
            ));
        }
        by_port.entry(int_at(port, "/port")).or_insert(node_port);
    }
    let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for port in ports.iter_mut() {
        if int_at(port, "/nodePort") != 0 {
            continue;
        }
        let number = int_at(port, "/port");
        let node_port = match by_port.get(&number) {
            Some(&node_port) => node_port,
            None if allocate => {
                let node_port = take_node_port(
                    ranges,
                    avoid,
                    picked,
                    "failed to allocate a nodePort: range is full",
                )?;
                by_port.insert(number, node_port);
                node_port
            }
            None => continue,
        };
        port["nodePort"] = json!(node_port);
    }
    Ok(())
}

fn assign_health_check_port(
    ranges: &ServiceRanges,
    svc: &mut Value,
    before: &BTreeSet<String>,
    avoid: &mut HashSet<String>,
    picked: &mut HashSet<String>,
) -> ApiResult<()> {
    let asked = int_at(svc, "/spec/healthCheckNodePort");
    if asked != 0 {
        if !may_hold(ranges, before, asked) {
            return Err(health_check_port_error(
                asked,
                &not_in_port_range(&ranges.node_ports),
            ));
        }
        return Ok(());
    }
    let port = take_node_port(
        ranges,
        avoid,
        picked,
        "failed to allocate a HealthCheck NodePort 0: range is full",
    )?;
    svc["spec"]["healthCheckNodePort"] = json!(port);
    Ok(())
}

/// Whether a Service may have `node_port`: it held it already, or it is in
/// the range.
fn may_hold(ranges: &ServiceRanges, before: &BTreeSet<String>, node_port: i64) -> bool {
    before.contains(&port_key(node_port)) || ranges.node_ports.contains(node_port)
}

/// A free node port, recorded as taken by this write; `full` is the error
/// when none is left.
fn take_node_port(
    ranges: &ServiceRanges,
    avoid: &mut HashSet<String>,
    picked: &mut HashSet<String>,
    full: &str,
) -> ApiResult<i64> {
    let port = ranges
        .node_ports
        .pick(|key| avoid.contains(key))
        .ok_or_else(|| ApiError::internal(full))?;
    picked.insert(port_key(port));
    avoid.insert(port_key(port));
    Ok(port)
}

fn not_in_port_range(range: &PortRange) -> String {
    format!("provided port is not in the valid range. The range of valid ports is {range}")
}

/// 422 on `spec.clusterIPs`, worded as kube-apiserver's `allocIPs` does.
fn cluster_ip_error(svc: &Value, why: &str) -> ApiError {
    let ips = cluster_ips(svc);
    let shown: Vec<String> = ips.iter().map(|ip| format!("{ip:?}")).collect();
    let ip = ips.first().copied().unwrap_or_default();
    ApiError::invalid(
        "",
        "Service",
        meta::name(svc),
        vec![FieldError::invalid_unquoted(
            "spec.clusterIPs",
            format!("[]string{{{}}}", shown.join(", ")),
            &format!("failed to allocate IP {ip}: {why}"),
        )],
    )
}

fn node_port_error(svc: &Value, index: usize, node_port: i64, why: &str) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        meta::name(svc),
        vec![FieldError::invalid_unquoted(
            format!("spec.ports[{index}].nodePort"),
            node_port,
            why,
        )],
    )
}

/// kube-apiserver reports a health check port it cannot have as an
/// internal error, not a field error.
fn health_check_port_error(port: i64, why: &str) -> ApiError {
    ApiError::internal(format!(
        "failed to allocate requested HealthCheck NodePort {port}: {why}"
    ))
}

/// The error for a key a client asked for that another Service holds.
fn already_allocated(svc: &Value, key: &str) -> ApiError {
    if key.starts_with(IP_KEYS) {
        return cluster_ip_error(svc, "provided IP is already allocated");
    }
    const WHY: &str = "provided port is already allocated";
    let port: i64 = key[PORT_KEYS.len()..].parse().unwrap_or_default();
    match ports(svc)
        .iter()
        .position(|p| int_at(p, "/nodePort") == port)
    {
        Some(index) => node_port_error(svc, index, port, WHY),
        None => health_check_port_error(port, WHY),
    }
}

/// The keys taken elsewhere that picking must avoid: at first only those a
/// write found taken (picks rarely collide), then, after a few collisions,
/// every key held.
#[derive(Default)]
struct Taken {
    keys: HashSet<String>,
    collisions: usize,
}

impl Taken {
    /// After a write found `key` taken: the picks to try again with, or the
    /// error if the client asked for that value.
    async fn collided(
        &mut self,
        objects: &Objects,
        svc: &Value,
        picked: &HashSet<String>,
        key: String,
    ) -> ApiResult<()> {
        if !picked.contains(&key) {
            return Err(already_allocated(svc, &key));
        }
        self.keys.insert(key);
        self.collisions += 1;
        if self.collisions == OPTIMISTIC_TRIES {
            self.keys.extend(held_in_store(objects).await?.into_keys());
        }
        Ok(())
    }
}

/// Every held key with its owner.
async fn held_in_store(objects: &Objects) -> ApiResult<BTreeMap<String, Vec<u8>>> {
    let resp = objects
        .store
        .range(
            KeyRange::Prefix(RANGE_KEYS.to_owned()),
            RangeOptions::default(),
        )
        .await
        .map_err(store_error)?;
    Ok(resp.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect())
}

/// Creates a Service with what it holds and its quota charges (see
/// [`Objects::create_charged`]); 409 AlreadyExists if its name is taken.
pub async fn create(
    objects: &Objects,
    kind: &Kind,
    obj: &Value,
    charges: Vec<(String, Value)>,
) -> ApiResult<Option<Value>> {
    let mut taken = Taken::default();
    loop {
        let mut svc = obj.clone();
        let picked = assign(&objects.service_ranges, &mut svc, None, &taken.keys)?;
        let holds = Holds {
            rewrite: charges.clone(),
            ..holds(None, Some(&svc))
        };
        match objects.write_holding(kind, &svc, false, 0, &holds).await? {
            Holding::Written(created) => return Ok(Some(created)),
            Holding::Changed if !holds.rewrite.is_empty() => return Ok(None),
            Holding::Changed => {}
            Holding::Raced => {
                return Err(ApiError::already_exists(
                    kind.group,
                    kind.plural,
                    meta::name(obj),
                ));
            }
            Holding::Taken(key) => taken.collided(objects, &svc, &picked, key).await?,
        }
    }
}

/// What creating `svc` would give it, without taking anything: a dry run.
pub async fn dry_run(objects: &Objects, svc: &mut Value) -> ApiResult<()> {
    let taken: HashSet<String> = held_in_store(objects).await?.into_keys().collect();
    let picked = assign(&objects.service_ranges, svc, None, &taken)?;
    match held_keys(svc)
        .into_iter()
        .find(|key| !picked.contains(key) && taken.contains(key))
    {
        Some(key) => Err(already_allocated(svc, &key)),
        None => Ok(()),
    }
}

/// Replaces a Service last written at `expected`, taking what its new type
/// or ports need and releasing what they no longer do; `None` when someone
/// else wrote it in between.
pub async fn replace(
    objects: &Objects,
    kind: &Kind,
    obj: &Value,
    expected: tugboat_store::Revision,
) -> ApiResult<Option<Value>> {
    let Some(old) = stored_at(objects, kind, obj, expected).await? else {
        return Ok(None);
    };
    let mut taken = Taken::default();
    loop {
        let mut svc = obj.clone();
        let picked = assign(&objects.service_ranges, &mut svc, Some(&old), &taken.keys)?;
        let holds = holds(Some(&old), Some(&svc));
        match objects
            .write_holding(kind, &svc, false, expected, &holds)
            .await?
        {
            Holding::Written(written) => return Ok(Some(written)),
            Holding::Raced | Holding::Changed => return Ok(None),
            Holding::Taken(key) => taken.collided(objects, &svc, &picked, key).await?,
        }
    }
}

/// Deletes a Service last written at `expected` and releases what it held.
pub async fn remove(
    objects: &Objects,
    kind: &Kind,
    obj: &Value,
    expected: tugboat_store::Revision,
) -> ApiResult<Option<Value>> {
    let Some(old) = stored_at(objects, kind, obj, expected).await? else {
        return Ok(None);
    };
    match objects
        .write_holding(kind, obj, true, expected, &holds(Some(&old), None))
        .await?
    {
        Holding::Written(gone) => Ok(Some(gone)),
        Holding::Raced | Holding::Taken(_) | Holding::Changed => Ok(None),
    }
}

/// The stored object, if it is still the one written at `expected`.
async fn stored_at(
    objects: &Objects,
    kind: &Kind,
    obj: &Value,
    expected: tugboat_store::Revision,
) -> ApiResult<Option<Value>> {
    let key = kind.key(meta::namespace(obj), meta::name(obj));
    let kv = objects.store.get(&key).await.map_err(store_error)?;
    kv.filter(|kv| kv.mod_revision == expected)
        .map(|kv| objects::decode(&kv))
        .transpose()
}

/// What kube-apiserver's service strategy and registry do to an update
/// before it is validated: values the client left out are kept
/// (`patchAllocatedValues`), and those the new type no longer uses are
/// dropped if the client did not change them (`dropTypeDependentFields`),
/// so that they are released.
pub fn carry_over(old: &Value, new: &mut Value) {
    drop_type_dependent_fields(old, new);
    patch_allocated_values(old, new);
}

fn drop_type_dependent_fields(old: &Value, new: &mut Value) {
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        let spec = &mut new["spec"];
        for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if old.pointer(&format!("/spec/{field}")) == spec.get(field) {
                remove_field(spec, field);
            }
        }
    }
    if needs_node_ports(old)
        && !needs_node_ports(new)
        && node_ports(old).is_superset(&node_ports(new))
    {
        for port in spec_ports_mut(new) {
            remove_field(port, "nodePort");
        }
    }
    if needs_health_check_port(old)
        && !needs_health_check_port(new)
        && int_at(old, "/spec/healthCheckNodePort") == int_at(new, "/spec/healthCheckNodePort")
    {
        remove_field(&mut new["spec"], "healthCheckNodePort");
    }
}

fn patch_allocated_values(old: &Value, new: &mut Value) {
    if needs_cluster_ip(old) && needs_cluster_ip(new) {
        for field in ["clusterIP", "clusterIPs"] {
            let missing = new
                .pointer(&format!("/spec/{field}"))
                .is_none_or(|v| v.is_null() || v == "" || v == &json!([]));
            if missing && let Some(value) = old.pointer(&format!("/spec/{field}")) {
                new["spec"][field] = value.clone();
            }
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        let in_use: BTreeSet<i64> = node_ports(old)
            .intersection(&node_ports(new))
            .copied()
            .collect();
        let by_name: HashMap<&str, i64> = ports(old)
            .iter()
            .map(|p| (str_at(p, "/name"), int_at(p, "/nodePort")))
            .collect();
        for port in spec_ports_mut(new) {
            let kept = by_name.get(str_at(port, "/name")).copied().unwrap_or(0);
            if int_at(port, "/nodePort") == 0 && kept != 0 && !in_use.contains(&kept) {
                port["nodePort"] = json!(kept);
            }
        }
    }
    if needs_health_check_port(old)
        && needs_health_check_port(new)
        && int_at(new, "/spec/healthCheckNodePort") == 0
    {
        new["spec"]["healthCheckNodePort"] = json!(int_at(old, "/spec/healthCheckNodePort"));
    }
}

fn spec_ports_mut(svc: &mut Value) -> impl Iterator<Item = &mut Value> {
    svc.pointer_mut("/spec/ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

fn remove_field(obj: &mut Value, field: &str) {
    if let Some(map) = obj.as_object_mut() {
        map.remove(field);
    }
}

/// Makes the held keys match the Services at start: a key no Service holds
/// is released, and what a Service holds without its key gets it. Writes
/// keep them in step, so this only finds work after a store was written by
/// an older server; two Services claiming one value are reported.
pub async fn repair(objects: &Objects) -> ApiResult<()> {
    let kind = registry::by_kind("v1", "Service").expect("services are served");
    let services = objects
        .store
        .range(KeyRange::Prefix(kind.key_prefix()), RangeOptions::default())
        .await
        .map_err(store_error)?;
    let mut wanted: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for kv in &services.kvs {
        let svc = objects::decode(kv)?;
        for key in held_keys(&svc) {
            let owner = owner(&svc);
            match wanted.get(&key) {
                Some(first) if *first != owner => tracing::warn!(
                    "{} is held by both {} and {}; delete one of them",
                    &key[RANGE_KEYS.len()..],
                    String::from_utf8_lossy(first),
                    String::from_utf8_lossy(&owner)
                ),
                _ => {
                    wanted.insert(key, owner);
                }
            }
        }
    }
    let held = held_in_store(objects).await?;
    let mut ops = Vec::new();
    for (key, owner) in &wanted {
        if held.get(key) != Some(owner) {
            tracing::info!(
                "recording {} as held by {}",
                &key[RANGE_KEYS.len()..],
                String::from_utf8_lossy(owner)
            );
            ops.push(Op::Put {
                key: key.clone(),
                value: owner.clone(),
                lease: 0,
            });
        }
    }
    for key in held.keys().filter(|key| !wanted.contains_key(*key)) {
        tracing::info!("releasing {}, held by no Service", &key[RANGE_KEYS.len()..]);
        ops.push(Op::Delete { key: key.clone() });
    }
    if !ops.is_empty() {
        let txn = Txn {
            compares: vec![],
            success: ops,
            failure: vec![],
        };
        objects.store.txn(txn).await.map_err(store_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tugboat_store::embedded::EmbeddedStore;

    use super::*;

    fn ranges() -> ServiceRanges {
        ServiceRanges {
            ips: IpRange::new("10.43.0.0/16".parse().unwrap()),
            node_ports: PortRange::default(),
        }
    }

    fn service(spec: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn an_ip_range_leaves_out_the_network_and_broadcast_addresses() {
        let range = IpRange::new("10.43.0.0/16".parse().unwrap());
        assert_eq!(range.first().to_string(), "10.43.0.1");
        assert_eq!(range.size, 65534);
        assert!(range.contains("10.43.255.254".parse().unwrap()));
        assert!(!range.contains("10.43.255.255".parse().unwrap()));
        assert!(!range.contains("10.43.0.0".parse().unwrap()));
        assert!(!range.contains("10.44.0.1".parse().unwrap()));
        let v6 = IpRange::new("fd00:43::/112".parse().unwrap());
        assert_eq!(v6.first().to_string(), "fd00:43::1");
        assert!(v6.contains("fd00:43::ffff".parse().unwrap()));
    }

    #[test]
    fn picks_come_from_above_the_static_band_while_it_has_room() {
        let range = IpRange::new("10.43.0.0/16".parse().unwrap());
        assert_eq!(range.static_band, 256);
        for _ in 0..200 {
            let ip = range.pick(|_| false).unwrap();
            assert!(address_number(ip) >= address_number("10.43.1.1".parse().unwrap()));
        }
        let ports = PortRange::default();
        for _ in 0..200 {
            assert!(ports.pick(|_| false).unwrap() >= 30086);
        }
    }

    #[test]
    fn a_small_range_is_used_up_exactly_once_then_is_full() {
        let range = IpRange::new("10.43.0.0/29".parse().unwrap());
        let mut taken = HashSet::new();
        while let Some(ip) = range.pick(|key| taken.contains(key)) {
            assert!(taken.insert(ip_key(ip)), "{ip} handed out twice");
        }
        assert_eq!(taken.len(), 6);
    }

    #[test]
    fn port_ranges_parse_as_kubernetes_writes_them() {
        let range: PortRange = "30000-32767".parse().unwrap();
        assert_eq!(range, PortRange::default());
        assert_eq!(range.to_string(), "30000-32767");
        assert!("32767-30000".parse::<PortRange>().is_err());
        assert!("30000".parse::<PortRange>().is_err());
    }

    #[test]
    fn a_service_gets_an_ip_and_a_node_port_per_port_number() {
        let mut svc = service(json!({"type": "NodePort", "ports": [
            {"port": 53, "protocol": "UDP"},
            {"port": 53, "protocol": "TCP"},
            {"port": 80, "protocol": "TCP", "nodePort": 30001},
        ]}));
        let picked = assign(&ranges(), &mut svc, None, &HashSet::new()).unwrap();
        let ip = str_at(&svc, "/spec/clusterIP").to_owned();
        assert_eq!(svc["spec"]["clusterIPs"], json!([ip]));
        let ports = ports(&svc);
        assert_eq!(ports[0]["nodePort"], ports[1]["nodePort"]);
        assert_eq!(ports[2]["nodePort"], json!(30001));
        assert_eq!(picked.len(), 2, "{picked:?}");
        assert_eq!(held_keys(&svc).len(), 3);
    }

    #[test]
    fn an_ipv6_service_cidr_gives_ipv6_services() {
        let ranges = ServiceRanges {
            ips: IpRange::new("fd00:43::/108".parse().unwrap()),
            node_ports: PortRange::default(),
        };
        let mut svc = service(json!({"ipFamilies": ["IPv4"], "ports": [{"port": 80}]}));
        assign(&ranges, &mut svc, None, &HashSet::new()).unwrap();
        let ip: IpAddr = str_at(&svc, "/spec/clusterIP").parse().unwrap();
        assert!(ranges.ips.contains(ip), "{ip}");
        assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv6"]));
    }

    #[test]
    fn values_asked_for_must_be_in_range() {
        let mut svc = service(json!({"clusterIP": "10.0.0.5", "ports": [{"port": 80}]}));
        let err = assign(&ranges(), &mut svc, None, &HashSet::new()).unwrap_err();
        assert_eq!(
            err.message,
            "Service \"web\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.0.0.5\"}: failed to allocate IP 10.0.0.5: the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
        );
        let mut svc =
            service(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}));
        let err = assign(&ranges(), &mut svc, None, &HashSet::new()).unwrap_err();
        assert_eq!(
            err.message,
            "Service \"web\" is invalid: spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
    }

    #[test]
    fn headless_and_external_name_services_get_no_address() {
        let mut headless = service(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        assign(&ranges(), &mut headless, None, &HashSet::new()).unwrap();
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert!(held_keys(&headless).is_empty());
        let mut external = service(json!({"type": "ExternalName", "externalName": "example.com"}));
        assign(&ranges(), &mut external, None, &HashSet::new()).unwrap();
        assert!(external["spec"].get("clusterIP").is_none());
    }

    #[test]
    fn changing_to_cluster_ip_drops_and_releases_node_ports() {
        let old = service(
            json!({"type": "NodePort", "clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"],
            "ports": [{"port": 80, "nodePort": 30001}]}),
        );
        let mut new = service(
            json!({"type": "ClusterIP", "clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"],
            "ports": [{"port": 80, "nodePort": 30001}]}),
        );
        carry_over(&old, &mut new);
        assert!(ports(&new)[0].get("nodePort").is_none());
        let holds = holds(Some(&old), Some(&new));
        assert!(holds.take.is_empty());
        assert_eq!(holds.release, vec![port_key(30001)]);
    }

    #[test]
    fn an_update_that_leaves_values_out_keeps_them() {
        let old = service(
            json!({"type": "NodePort", "clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"],
            "ports": [{"name": "http", "port": 80, "nodePort": 30001}]}),
        );
        let mut new =
            service(json!({"type": "NodePort", "ports": [{"name": "http", "port": 8080}]}));
        carry_over(&old, &mut new);
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.43.0.5"]));
        assert_eq!(ports(&new)[0]["nodePort"], json!(30001));
    }

    #[test]
    fn a_health_check_port_for_local_load_balancers() {
        let mut svc = service(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80}]}),
        );
        assign(&ranges(), &mut svc, None, &HashSet::new()).unwrap();
        let health = int_at(&svc, "/spec/healthCheckNodePort");
        assert!(PortRange::default().contains(health));
        assert_ne!(health, int_at(&ports(&svc)[0], "/nodePort"));
    }

    async fn objects_with(cidr: &str) -> (tempfile::TempDir, Arc<Objects>) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("state.redb")).unwrap();
        let ranges = ServiceRanges {
            ips: IpRange::new(cidr.parse().unwrap()),
            node_ports: PortRange::default(),
        };
        (dir, Objects::new(store, ranges))
    }

    fn service_kind() -> &'static Kind {
        registry::by_kind("v1", "Service").unwrap()
    }

    #[tokio::test]
    async fn repair_records_what_services_hold_and_releases_the_rest() {
        let (_dir, objects) = objects_with("10.43.0.0/16").await;
        // A Service written without its keys (by an older server) and a
        // key no Service holds (left by a crash).
        let mut svc = service(json!({"type": "NodePort", "clusterIP": "10.43.0.7",
            "clusterIPs": ["10.43.0.7"], "ports": [{"port": 80, "nodePort": 30007}]}));
        svc["metadata"]["name"] = json!("web");
        let stray = ip_key("10.43.0.8".parse().unwrap());
        let txn = Txn {
            compares: vec![],
            success: vec![
                Op::Put {
                    key: service_kind().key("default", "web"),
                    value: serde_json::to_vec(&svc).unwrap(),
                    lease: 0,
                },
                Op::Put {
                    key: stray,
                    value: b"default/gone".to_vec(),
                    lease: 0,
                },
            ],
            failure: vec![],
        };
        objects.store.txn(txn).await.unwrap();
        repair(&objects).await.unwrap();
        let held = held_in_store(&objects).await.unwrap();
        let expected: BTreeMap<String, Vec<u8>> = [
            (
                ip_key("10.43.0.7".parse().unwrap()),
                b"default/web".to_vec(),
            ),
            (port_key(30007), b"default/web".to_vec()),
        ]
        .into();
        assert_eq!(held, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_creates_share_out_a_small_range_exactly_once() {
        let (_dir, objects) = objects_with("10.43.0.0/27").await;
        let creates: Vec<_> = (0..40)
            .map(|i| {
                let objects = objects.clone();
                tokio::spawn(async move {
                    let mut svc = service(json!({"ports": [{"port": 80}]}));
                    svc["metadata"]["name"] = json!(format!("svc-{i}"));
                    objects.create(service_kind(), &svc).await
                })
            })
            .collect();
        let mut ips = HashSet::new();
        let mut full = 0;
        for create in creates {
            match create.await.unwrap() {
                Ok(svc) => assert!(ips.insert(str_at(&svc, "/spec/clusterIP").to_owned())),
                Err(e) => {
                    assert_eq!(
                        e.message,
                        "Internal error occurred: failed to allocate a serviceIP: range is full"
                    );
                    full += 1;
                }
            }
        }
        assert_eq!((ips.len(), full), (30, 10), "{ips:?}");
        assert_eq!(held_in_store(&objects).await.unwrap().len(), 30);
    }

    #[tokio::test]
    async fn deleting_a_service_releases_what_it_held() {
        let (_dir, objects) = objects_with("10.43.0.0/16").await;
        let svc = service(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80}, {"port": 443}]}),
        );
        let created = objects.create(service_kind(), &svc).await.unwrap();
        assert_eq!(held_in_store(&objects).await.unwrap().len(), 4);
        let expected = objects::revision_of(&created);
        let gone = objects
            .remove(service_kind(), &created, expected)
            .await
            .unwrap();
        assert!(gone.is_some());
        assert!(held_in_store(&objects).await.unwrap().is_empty());
    }
}

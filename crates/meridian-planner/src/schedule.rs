//! The scheduler: an event-driven list scheduler over simulated time.
//!
//! At each instant it first runs the instantaneous work every changed partition allows (leader
//! hand-offs, state transitions, drops of replicas whose replacements serve), then starts the
//! copies that fit, highest priority first, each at the fastest rate every resource on its
//! path can spare. A job that cannot run *parks* on what stopped it — a full resource, a node
//! or domain at its concurrency limit, the byte budget, a closed window — and is woken when
//! that changes, so the work per event is proportional to what the event touched, not to the
//! size of the plan. Time then jumps to the next copy's end (or window opening).
//!
//! Make-before-break: a replica leaving a partition is dropped only once the partition keeps
//! enough serving replicas without it; a partition that would otherwise deadlock (every
//! destination full of replicas waiting to leave) may drop first when it stays at or above its
//! state model's minimum, and the step says so.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt::Write;

use meridian_model::{DomainId, Fleet, GroupId, NodeId, Placement, Slot, StateId};

use rustc_hash::FxHashMap as IdMap;

use crate::bound::makespan_bound;
use crate::ledger::{describe, Ledger};
use crate::options::Options;
use crate::path::{Network, BYTES_PER_MB};
use crate::plan::{Action, Blocked, Load, Plan, Reason, Step};
use crate::routes::{demotion, Hops};

/// Jobs a freed resource looks past (needing more than it freed) before it stops looking.
const PASSED_OVER_MAX: usize = 64;

/// Said of a copy that runs below `rate_min` because nothing else in flight would ever free
/// the capacity it needs (a fleet left this full by its target): slow beats never.
pub const CRAWL_NOTE: &str = "below rate_min: nothing in flight will free more";

#[derive(Debug, Clone, Copy, PartialEq)]
struct Live {
    node: NodeId,
    state: StateId,
    /// The copy that brings it is still running: present (it holds space) but not serving.
    copying: bool,
    /// Copies in flight reading from it: it stays until they finish.
    reading: u32,
}

struct Part {
    group: GroupId,
    partition: u32,
    live: Vec<Live>,
    target: Vec<(NodeId, StateId)>,
    /// Serving replicas the partition must never go below during the plan.
    floor: usize,
    /// It lost replicas (failed nodes): its copies come first and ignore windows.
    urgent: bool,
    priority: i32,
    /// Steps that brought replicas in, for the `after` of the drops and hand-offs they allow.
    arrivals: Vec<u32>,
    /// Add jobs waiting for a source replica to finish arriving.
    waiting_for_source: Vec<NodeId>,
    /// Dense id of the partition's instantaneous job; its adds follow, one per target
    /// replica (see `job_id`).
    first_job: u32,
}

impl Part {
    fn serving(&self) -> usize {
        self.live.iter().filter(|l| !l.copying).count()
    }

    fn target_state(&self, node: NodeId) -> Option<StateId> {
        self.target.iter().find(|t| t.0 == node).map(|t| t.1)
    }

    fn live_at(&self, node: NodeId) -> Option<usize> {
        self.live.iter().position(|l| l.node == node)
    }

    /// Target replicas not yet present at all.
    fn missing(&self) -> impl Iterator<Item = (NodeId, StateId)> + '_ {
        self.target
            .iter()
            .copied()
            .filter(|t| self.live_at(t.0).is_none())
    }

    fn done(&self) -> bool {
        self.live.len() == self.target.len()
            && self
                .live
                .iter()
                .all(|l| !l.copying && self.target_state(l.node) == Some(l.state))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Job {
    /// Instantaneous work of a partition (index into `parts`).
    Instant(u32),
    /// Bring a replica of a partition to a node.
    Add(u32, NodeId),
}

/// Order among jobs ready at one instant: instantaneous work first (it frees capacity), then
/// urgent copies, product priority, the partition's shortfall, bigger copies first (longest
/// first shortens the plan), then ids. (Ordering copies through the most loaded resource first
/// was tried: on a zone evacuation bound by a region link it made the plan longer.)
///
/// Packed into words that compare as the fields would one by one (see `Key::new`): the
/// queues compare keys on every insert, and comparing a tuple of the fields one by one took
/// about twice as long. Last comes the job's dense id (`job_id`): a function of the job, so
/// it never decides the order, carried so that the bookkeeping of a job taken from a queue
/// costs no lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    order: [u64; 3],
    id: u32,
}

/// What ranks a copy among the copies ready with it, in `Key`.
#[derive(Debug, Clone, Copy)]
struct Rank {
    urgent: bool,
    priority: i32,
    /// Target replicas the partition lacks serving.
    shortfall: usize,
    size_bytes: f64,
}

impl Rank {
    /// Instantaneous work is not ranked: it all comes first, by partition.
    const NONE: Rank = Rank {
        urgent: false,
        priority: 0,
        shortfall: 0,
        size_bytes: 0.0,
    };
}

/// The largest shortfall a key holds: it has 30 bits (a partition has a handful of replicas).
const SHORTFALL_MAX: usize = (1 << 30) - 1;

impl Key {
    /// The first word holds, from its top bit down, the kind (instantaneous work first), then
    /// the complements of urgent, priority (offset so that it sorts as unsigned) and
    /// shortfall, so that more sorts first; the second the complement of the size's bits (the
    /// bits are what was always compared); the third the partition and the node, as `Job`
    /// sorts among jobs of one kind.
    fn new(job: Job, id: u32, rank: Rank) -> Key {
        assert!(
            rank.shortfall <= SHORTFALL_MAX,
            "a shortfall beyond the key's bits"
        );
        let (kind, partition, node) = match job {
            Job::Instant(p) => (0u64, p, 0u32),
            Job::Add(p, node) => (1, p, node.0),
        };
        let priority = (rank.priority as u32) ^ (1 << 31);
        let first = kind << 63
            | u64::from(!rank.urgent) << 62
            | u64::from(!priority) << 30
            | (SHORTFALL_MAX - rank.shortfall) as u64;
        let second = !rank.size_bytes.to_bits();
        let third = u64::from(partition) << 32 | u64::from(node);
        Key {
            order: [first, second, third],
            id,
        }
    }

    fn job(self) -> Job {
        let [first, _, third] = self.order;
        let partition = (third >> 32) as u32;
        if first >> 63 == 0 {
            Job::Instant(partition)
        } else {
            Job::Add(partition, NodeId(third as u32))
        }
    }
}

/// What a parked job waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Wait {
    Resource(usize),
    Node(NodeId),
    Domain(DomainId),
    Budget,
    Window,
    /// Nothing will change it; reported as blocked.
    Never,
}

/// What stopped a copy from starting, rendered into words only if anyone asks.
#[derive(Debug, Clone, Copy)]
enum Blocker {
    SourceBusy(NodeId, u32),
    DomainBusy(DomainId, u32),
    Budget,
    /// (resource, room in MB/s)
    SlowForWindow(usize, f64),
    Slow(usize, f64),
    Window,
    BudgetTooSlowForWindow,
    BudgetBelowRateMin,
}

impl Blocker {
    fn render(self, fleet: &Fleet, resources: &crate::path::Resources, rate_min: f64) -> String {
        match self {
            Blocker::SourceBusy(node, count) => format!(
                "source {} has {count} copies in flight (moves_per_node_max)",
                fleet.topology.node_name(node)
            ),
            Blocker::DomainBusy(domain, max) => format!(
                "{} has {max} copies in flight (moves_per_domain_max)",
                fleet.topology.domain(domain).name
            ),
            Blocker::Budget => "the bytes_per_hour budget is in use".to_string(),
            Blocker::SlowForWindow(r, room) => format!(
                "{} leaves {room:.0} MB/s, too slow to finish within the window",
                describe(fleet, resources, r)
            ),
            Blocker::Slow(r, room) => format!(
                "{} leaves {room:.0} MB/s (rate_min {rate_min:.0})",
                describe(fleet, resources, r)
            ),
            Blocker::Window => "too slow to finish within the window".to_string(),
            Blocker::BudgetTooSlowForWindow => {
                "the whole bytes_per_hour budget is too slow to finish within the window"
                    .to_string()
            }
            Blocker::BudgetBelowRateMin => {
                format!("the bytes_per_hour budget allows less than rate_min ({rate_min:.0} MB/s)")
            }
        }
    }
}

/// What a step's priority note says. Few distinct ones occur in a plan and every step
/// carries one, so each is written once and copied (`Scheduler::priority_notes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PriorityFacts {
    urgent: bool,
    priority: i32,
    serving: usize,
    wanted: usize,
    floor: usize,
    min_serving: u32,
}

impl PriorityFacts {
    fn note(self) -> String {
        format!(
            "{}product priority {}, {} of {} target replicas serving, floor {} (min_serving {})",
            if self.urgent {
                "urgent: restores lost redundancy; "
            } else {
                ""
            },
            self.priority,
            self.serving,
            self.wanted,
            self.floor,
            self.min_serving
        )
    }
}

/// Vectors filled and emptied on every attempt to start a copy or wake a wait, kept
/// between uses so that each does not allocate its own.
#[derive(Default)]
struct Scratch {
    /// The possible sources of a copy, best first.
    ranked: Vec<(Reverse<usize>, bool, NodeId)>,
    /// The sources a copy could start from now.
    candidates: Vec<Candidate>,
    /// The jobs a wait wakes.
    woken: Vec<Key>,
}

/// A transition's burst, booked until `end`.
struct Burst {
    end: f64,
    deltas: Vec<(usize, f64)>,
}

/// Per-job bookkeeping, indexed by dense job id rather than hashed by job: it is read or
/// written every time a job runs or parks.
struct JobLog {
    /// The instant each job last ran at (0: never). Moving time on makes every entry stale at
    /// once; a hash set of the jobs that ran, cleared at each instant, cost a memset of its
    /// peak size (every job runs at the first instant) on each of tens of thousands. Apart
    /// from the records: waking a wait scans it for many parked jobs.
    ran_at: Vec<u32>,
    /// The current instant, counted from 1.
    instant: u32,
    /// One record per job, so that parking touches one place in memory, not one per field.
    records: Vec<JobRecord>,
}

#[derive(Clone, Default)]
struct JobRecord {
    /// First reason it waited, with the time, for `explain`.
    waited: Option<String>,
    /// What it waits on now (and the room it needs there), for what stays blocked.
    still_waiting: Option<(Wait, f64)>,
}

impl JobLog {
    fn new(count: usize) -> JobLog {
        JobLog {
            ran_at: vec![0; count],
            instant: 1,
            records: vec![JobRecord::default(); count],
        }
    }

    fn ran_now(&self, id: usize) -> bool {
        self.ran_at[id] == self.instant
    }

    fn mark_ran(&mut self, id: usize) {
        self.ran_at[id] = self.instant;
    }

    /// Time moved on: no job has run at the new instant yet.
    fn next_instant(&mut self) {
        self.instant += 1;
    }
}

#[derive(Default)]
struct Waiters {
    /// At most the least room any of them needs (the least since the list was last empty):
    /// below it, a freed resource wakes nobody.
    min_need: f64,
    /// Per job, in priority order: (room needed to start, room it would likely take).
    jobs: BTreeMap<Key, (f64, f64)>,
}

struct Copy {
    step: u32,
    part: u32,
    node: NodeId,
    source: NodeId,
    rate: f64,
    deltas: Vec<(usize, f64)>,
    counted_domains: Vec<DomainId>,
}

struct Scheduler<'a> {
    fleet: &'a Fleet,
    network: Network,
    /// Per product, the next state on the way between any two of its model.
    hops: Vec<Hops>,
    options: &'a Options,
    ledger: Ledger,
    parts: Vec<Part>,
    steps: Vec<Step>,
    now: f64,
    ready: BTreeSet<Key>,
    /// Parked jobs per wait, in priority order.
    parked: IdMap<Wait, BTreeSet<Key>>,
    /// Jobs waiting for room on each resource (by index), with the room each needs. Looked
    /// up for every delta booked that frees room.
    resource_waiters: Vec<Option<Waiters>>,
    resources_partly_woken: BTreeSet<usize>,
    /// Counted waits (node, domain, budget) that were only partly woken: after the ready
    /// queue drains, they are topped up while they have room.
    partly_woken: BTreeSet<Wait>,
    /// Nothing else can free capacity: copies may run below `rate_min` rather than never.
    crawl: bool,
    /// The guard on scheduling rounds tripped (a bug): what is left is reported as blocked.
    gave_up: bool,
    /// Transition bursts in flight, by step: released when the step ends.
    bursts: IdMap<u32, Vec<(usize, f64)>>,
    /// What is known of each job, by dense id.
    jobs: JobLog,
    /// Priority notes written so far, by what they say.
    priority_notes: IdMap<PriorityFacts, String>,
    scratch: Scratch,
    active: BinaryHeap<Reverse<(u64, u32)>>,
    copies: IdMap<u32, Copy>,
    node_moves: Vec<u32>,
    domain_moves: IdMap<DomainId, u32>,
    rate_in_flight: f64,
}

/// Plans the way from `current` to `target`. See the crate docs for the guarantees.
pub fn plan(
    fleet: &Fleet,
    current: &Placement,
    target: &Placement,
    options: &Options,
    now: f64,
) -> Plan {
    let mut failed = vec![false; fleet.topology.nodes.len()];
    for node in &options.failed {
        if let Some(f) = failed.get_mut(node.index()) {
            *f = true;
        }
    }
    let parts = build_parts(fleet, current, target, options, &failed);
    let job_count = parts
        .last()
        .map_or(0, |p| p.first_job as usize + 1 + p.target.len());
    let ledger = Ledger::new(fleet, current, &options.failed);
    let network = Network::new(fleet);
    let bound = makespan_bound(fleet, &network, &ledger, &parts_view(&parts), options);
    let steps = Vec::with_capacity(steps_expected(&parts));
    let resource_waiters = std::iter::repeat_with(|| None)
        .take(ledger.resources.count())
        .collect();
    let mut scheduler = Scheduler {
        fleet,
        network,
        hops: fleet.products.iter().map(Hops::new).collect(),
        options,
        ledger,
        parts,
        steps,
        now,
        ready: BTreeSet::new(),
        parked: IdMap::default(),
        resource_waiters,
        resources_partly_woken: BTreeSet::new(),
        partly_woken: BTreeSet::new(),
        crawl: false,
        bursts: IdMap::default(),
        gave_up: false,
        jobs: JobLog::new(job_count),
        priority_notes: IdMap::default(),
        scratch: Scratch::default(),
        active: BinaryHeap::new(),
        copies: IdMap::default(),
        node_moves: vec![0; fleet.topology.nodes.len()],
        domain_moves: IdMap::default(),
        rate_in_flight: 0.0,
    };
    scheduler.ready = scheduler
        .initial_jobs()
        .map(|job| scheduler.key(job))
        .collect();
    scheduler.book_in_flight();
    scheduler.run();
    let blocked = scheduler.blocked();
    let bytes = scheduler
        .steps
        .iter()
        .map(|s| match &s.action {
            Action::Replicate { bytes, .. } => *bytes,
            _ => 0.0,
        })
        .sum();
    let end = scheduler.steps.iter().map(|s| s.end).fold(now, f64::max);
    Plan {
        start: now,
        end,
        steps: scheduler.steps,
        blocked,
        bound,
        bytes,
    }
}

/// Room for the steps a plan is likely to take, reserved up front: steps are large, and a
/// vector of them grown step by step was copied over and over on a large plan. At least a
/// copy per missing replica and a drop per leaving one; state changes and hand-offs come on
/// top (a sixth of the steps of a zone evacuation), so a quarter more is reserved.
fn steps_expected(parts: &[Part]) -> usize {
    let at_least: usize = parts
        .iter()
        .map(|p| {
            let leaving = p.live.iter().filter(|l| p.target_state(l.node).is_none());
            p.missing().count() + leaving.count()
        })
        .sum();
    at_least + at_least / 4
}

/// A job's dense id: its partition's `first_job` for the instantaneous work, then the place
/// of the node among the partition's targets for an add.
fn job_id(parts: &[Part], job: Job) -> usize {
    match job {
        Job::Instant(p) => parts[p as usize].first_job as usize,
        Job::Add(p, node) => {
            let part = &parts[p as usize];
            let place = part.target.iter().position(|t| t.0 == node);
            part.first_job as usize + 1 + place.expect("an add is only for a target replica")
        }
    }
}

/// What the bound needs to know of each partition that changes.
pub struct PartView {
    pub group: GroupId,
    /// Nodes holding a serving replica at the start (possible copy sources).
    pub sources: Vec<NodeId>,
    /// Target nodes without a replica at the start (each needs a copy).
    pub missing: Vec<NodeId>,
    /// Replicas present at both ends: node, state now, state in the target.
    pub kept: Vec<(NodeId, StateId, StateId)>,
}

fn parts_view(parts: &[Part]) -> Vec<PartView> {
    parts
        .iter()
        .map(|p| PartView {
            group: p.group,
            sources: p.live.iter().map(|l| l.node).collect(),
            missing: p.missing().map(|m| m.0).collect(),
            kept: p
                .live
                .iter()
                .filter_map(|l| p.target_state(l.node).map(|t| (l.node, l.state, t)))
                .collect(),
        })
        .collect()
}

/// The partitions whose replicas differ between `current` and `target` (as sets of node and
/// state: which slot holds which replica does not matter).
fn build_parts(
    fleet: &Fleet,
    current: &Placement,
    target: &Placement,
    options: &Options,
    failed: &[bool],
) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut first_job = 0u32;
    for group in &fleet.groups {
        let model = &fleet.products[group.product.index()];
        let per = group.replicas_per_partition();
        for partition in 0..group.partitions {
            let first = group.partition_slot(partition);
            let (now, then) = (
                &current.slots[first..first + per],
                &target.slots[first..first + per],
            );
            // Most partitions keep every replica where it is: no need to sort them to see it.
            let on_failed = |s: &Slot| s.node().is_some_and(|n| failed[n.index()]);
            if now == then && !now.iter().any(on_failed) {
                continue;
            }
            let mut had = 0usize;
            let mut live = Vec::new();
            for slot in now {
                let Some(node) = slot.node() else { continue };
                had += 1;
                if !failed[node.index()] && slot.state != model.initial {
                    live.push(Live {
                        node,
                        state: slot.state,
                        copying: false,
                        reading: 0,
                    });
                }
            }
            let mut wanted: Vec<(NodeId, StateId)> = then
                .iter()
                .filter_map(|s| s.node().map(|n| (n, s.state)))
                .filter(|&(_, state)| state != model.initial)
                .collect();
            wanted.sort();
            let mut have: Vec<(NodeId, StateId)> = live.iter().map(|l| (l.node, l.state)).collect();
            have.sort();
            if have == wanted {
                continue;
            }
            let serving_now = live.len();
            let jobs = 1 + wanted.len() as u32;
            parts.push(Part {
                group: group.id,
                partition,
                floor: (model.min_serving as usize).min(serving_now),
                // Fewer serving replicas than wanted: lost redundancy (or a new partition).
                urgent: serving_now < wanted.len() || had > serving_now,
                priority: options.priority_of(group.product),
                live,
                target: wanted,
                arrivals: Vec::new(),
                waiting_for_source: Vec::new(),
                first_job,
            });
            first_job += jobs;
        }
    }
    parts
}

impl Scheduler<'_> {
    /// Books what an earlier plan's copies hold until they end, released like a burst (under
    /// step ids counting down from `u32::MAX`, which no step of this plan reaches).
    fn book_in_flight(&mut self) {
        for (k, flight) in self.options.in_flight.iter().enumerate() {
            if flight.until.is_nan() || flight.until <= self.now {
                continue; // Ended already (or a NaN): holds nothing.
            }
            let deltas: Vec<(usize, f64)> = flight
                .loads
                .iter()
                .map(|l| (self.ledger.resources.index(l.resource), l.amount))
                .collect();
            self.ledger.apply(&deltas, 1.0);
            if flight.until.is_finite() {
                let id = u32::MAX - k as u32;
                self.bursts.insert(id, deltas);
                self.active.push(Reverse((flight.until.to_bits(), id)));
            }
        }
    }

    fn job_id(&self, job: Job) -> usize {
        job_id(&self.parts, job)
    }

    /// The next state from `from` toward `to` in `group`'s state model, avoiding the leader
    /// state unless it is `to` if `avoid_leader` (`routes::next_hop`, looked up).
    fn next_hop(
        &self,
        group: GroupId,
        from: StateId,
        to: StateId,
        avoid_leader: bool,
    ) -> Option<StateId> {
        let product = self.fleet.group(group).product;
        self.hops[product.index()].next(from, to, avoid_leader)
    }

    fn key(&self, job: Job) -> Key {
        let id = self.job_id(job) as u32;
        let rank = match job {
            Job::Instant(_) => Rank::NONE,
            Job::Add(p, _) => {
                let part = &self.parts[p as usize];
                Rank {
                    urgent: part.urgent,
                    priority: part.priority,
                    shortfall: part.target.len().saturating_sub(part.serving()),
                    size_bytes: self.fleet.group(part.group).size_bytes(),
                }
            }
        };
        Key::new(job, id, rank)
    }

    /// Every partition's instantaneous work and an add per missing replica. Queued all at
    /// once: a set collected from many keys is built in one pass, not key by key.
    fn initial_jobs(&self) -> impl Iterator<Item = Job> + '_ {
        self.parts.iter().zip(0u32..).flat_map(|(part, p)| {
            let adds = part.missing().map(move |(node, _)| Job::Add(p, node));
            std::iter::once(Job::Instant(p)).chain(adds)
        })
    }

    fn enqueue(&mut self, job: Job) {
        let key = self.key(job);
        self.ready.insert(key);
    }

    /// Notes why `job` waits (the first reason is kept for `explain`; formatting it only
    /// then keeps parking cheap) and what it waits on now (for what stays blocked).
    fn note_wait(&mut self, job: Job, wait: Wait, need: f64, why: impl FnOnce() -> String) {
        let (now, id) = (self.now, self.job_id(job));
        let record = &mut self.jobs.records[id];
        record.waited.get_or_insert_with(|| {
            let mut text = why();
            // Appended in place: a second `format!` would copy the reason again.
            let _ = write!(text, " (at t={now:.0}s)");
            text
        });
        record.still_waiting = Some((wait, need));
    }

    fn park(&mut self, job: Job, wait: Wait, why: impl FnOnce() -> String) {
        self.note_wait(job, wait, 0.0, why);
        let key = self.key(job);
        self.parked.entry(wait).or_default().insert(key);
    }

    /// Parks `job` until resource `r` has at least `need` free.
    fn park_on_resource(
        &mut self,
        job: Job,
        r: usize,
        (need, take): (f64, f64),
        why: impl FnOnce() -> String,
    ) {
        self.note_wait(job, Wait::Resource(r), need, why);
        let key = self.key(job);
        let waiters = self.resource_waiters[r].get_or_insert_with(|| Waiters {
            min_need: f64::INFINITY,
            jobs: BTreeMap::new(),
        });
        waiters.min_need = waiters.min_need.min(need);
        waiters.jobs.insert(key, (need, take.max(need)));
    }

    /// Wakes jobs parked on `r`, best first, while their summed need fits its free capacity:
    /// a copy that ends frees room for a few more, not for the thousand waiting behind it.
    /// What stays parked is topped up by `pump` once the woken ones have had their turn.
    fn wake_resource(&mut self, r: usize, everyone: bool) {
        let free = self.ledger.free(r);
        let Some(waiters) = self.resource_waiters[r].as_mut() else {
            return;
        };
        if !everyone && free + 1e-9 < waiters.min_need {
            return;
        }
        // Best first, by what each would likely take, while the freed room lasts; jobs that
        // need more than is free are passed over, but only a few, so a wake costs what it
        // wakes, not the length of the queue.
        let mut budget = free + 1e-9;
        let mut woken = std::mem::take(&mut self.scratch.woken);
        woken.clear();
        let mut passed_over = 0usize;
        for (key, &(need, take)) in waiters.jobs.iter() {
            if everyone || need <= budget {
                budget -= take;
                woken.push(*key);
                if !everyone && budget <= 0.0 {
                    break;
                }
            } else {
                passed_over += 1;
                if passed_over > PASSED_OVER_MAX {
                    break;
                }
            }
        }
        for key in &woken {
            waiters.jobs.remove(key);
            self.ready.insert(*key);
        }
        if waiters.jobs.is_empty() {
            self.resource_waiters[r] = None;
        } else if !woken.is_empty() {
            self.resources_partly_woken.insert(r);
        }
        self.scratch.woken = woken;
    }

    /// Wakes every job parked on `wait` (a resource that freed: any of them may fit now).
    fn wake(&mut self, wait: Wait) {
        if let Some(keys) = self.parked.remove(&wait) {
            for key in keys {
                self.ready.insert(key);
            }
        }
    }

    /// Room a counted wait has now: free copy slots on a node or domain, copies the byte
    /// budget can still start. Waking more would only make them park again.
    fn room(&self, wait: Wait) -> usize {
        match wait {
            Wait::Node(n) => self
                .options
                .moves_per_node_max
                .saturating_sub(self.node_moves[n.index()]) as usize,
            Wait::Domain(d) => {
                let max = self
                    .options
                    .moves_per_domain_max
                    .iter()
                    .find(|(level, _)| *level == self.fleet.topology.domain(d).level)
                    .map_or(u32::MAX, |l| l.1);
                max.saturating_sub(self.domain_moves.get(&d).copied().unwrap_or(0)) as usize
            }
            Wait::Budget => match self.options.bytes_per_hour_max {
                Some(b) => {
                    let room = b / 3600.0 / BYTES_PER_MB - self.rate_in_flight;
                    if room >= self.options.rate_min {
                        (room / self.options.rate_min).ceil().min(1e6) as usize
                    } else {
                        0
                    }
                }
                None => usize::MAX,
            },
            _ => usize::MAX,
        }
    }

    /// Wakes as many jobs parked on a counted wait as it has room for, best first. Waking
    /// all of them on every change would retry hundreds of jobs per finished copy.
    fn wake_some(&mut self, wait: Wait) {
        let room = self.room(wait);
        let Some(keys) = self.parked.get_mut(&wait) else {
            return;
        };
        // Jobs that already ran at this instant and parked here again would only do the same
        // again: wake the ones behind them.
        let jobs = &self.jobs;
        let mut woken = std::mem::take(&mut self.scratch.woken);
        woken.clear();
        woken.extend(
            keys.iter()
                .filter(|key| !jobs.ran_now(key.id as usize))
                .take(room),
        );
        for key in &woken {
            keys.remove(key);
            self.ready.insert(*key);
        }
        if keys.is_empty() {
            self.parked.remove(&wait);
        } else if !woken.is_empty() {
            self.partly_woken.insert(wait);
        }
        self.scratch.woken = woken;
    }

    /// Tops up the counted waits and resources that woke jobs at this instant and still have
    /// jobs parked: the woken ones may have parked elsewhere, leaving room unused. Waits with
    /// no room are left to the copies holding it, which wake them when they end; so the work
    /// here follows what happened, not how much is parked. True if it woke anything.
    fn pump(&mut self) -> bool {
        let waits = std::mem::take(&mut self.partly_woken);
        let before = self.ready.len();
        for r in std::mem::take(&mut self.resources_partly_woken) {
            self.wake_resource(r, false);
        }
        for wait in waits {
            if self.room(wait) > 0 {
                self.wake_some(wait);
            }
        }
        self.ready.len() > before
    }

    /// Applies steady or transient deltas. Resources that freed are woken by `pump`, once the
    /// ready queue drains: waking at each release would hand the same room out again to
    /// every release at one instant (copies started together end together), since the jobs
    /// woken by the first have not yet run to take it.
    fn book(&mut self, deltas: &[(usize, f64)], sign: f64) {
        self.ledger.apply(deltas, sign);
        for &(r, amount) in deltas {
            if amount * sign < 0.0 && self.resource_waiters[r].is_some() {
                self.resources_partly_woken.insert(r);
            }
        }
    }

    fn run(&mut self) {
        // Every job runs a bounded number of times per event that concerns it; this bound is
        // far above any real plan and only guards against a bug looping forever.
        let rounds_max = 4096 * (self.parts.len() + 16);
        let mut rounds = 0usize;
        loop {
            loop {
                while let Some(key) = self.ready.pop_first() {
                    rounds += 1;
                    if rounds > rounds_max {
                        self.gave_up = true;
                        return;
                    }
                    self.jobs.mark_ran(key.id as usize);
                    match key.job() {
                        Job::Instant(p) => self.run_instant(p),
                        Job::Add(p, node) => self.try_add(p, node),
                    }
                }
                if !self.pump() {
                    break;
                }
            }
            let next_end = self
                .active
                .peek()
                .map(|Reverse((bits, _))| f64::from_bits(*bits));
            let next_window = if self.parked.contains_key(&Wait::Window) {
                self.next_window_start()
            } else {
                None
            };
            let next = match (next_end, next_window) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match next {
                Some(t) => {
                    if t > self.now {
                        self.jobs.next_instant();
                    }
                    self.now = self.now.max(t);
                    if next_window.is_some_and(|w| w <= t) {
                        self.wake(Wait::Window);
                    }
                    while let Some(Reverse((bits, step))) = self.active.peek().copied() {
                        if f64::from_bits(bits) > self.now {
                            break;
                        }
                        self.active.pop();
                        match self.bursts.remove(&step) {
                            Some(deltas) => self.book(&deltas, -1.0),
                            None => self.finish_copy(step),
                        }
                    }
                }
                // Each call drops replicas for good or turns on crawling once, so this ends.
                None => {
                    if !self.break_deadlock() {
                        return;
                    }
                }
            }
        }
    }

    fn next_window_start(&self) -> Option<f64> {
        self.options
            .windows
            .iter()
            .map(|w| w.0)
            .filter(|&start| start > self.now)
            .fold(None, |best: Option<f64>, s| {
                Some(best.map_or(s, |b| b.min(s)))
            })
    }

    fn window_end(&self) -> Option<f64> {
        self.options
            .windows
            .iter()
            .filter(|w| w.0 <= self.now && self.now < w.1)
            .map(|w| w.1)
            .fold(None, |best: Option<f64>, e| {
                Some(best.map_or(e, |b| b.max(e)))
            })
    }

    fn push_step(&mut self, part: u32, action: Action, end: f64, reason: Reason) -> u32 {
        let p = &self.parts[part as usize];
        let id = self.steps.len() as u32;
        self.steps.push(Step {
            id,
            group: p.group,
            partition: p.partition,
            start: self.now,
            end,
            action,
            reason,
            burst: Vec::new(),
        });
        id
    }

    fn reason(&mut self, job: Job, after: Vec<u32>) -> Reason {
        let part = &self.parts[match job {
            Job::Instant(p) | Job::Add(p, _) => p as usize,
        }];
        let facts = PriorityFacts {
            urgent: part.urgent,
            priority: part.priority,
            serving: part.serving(),
            wanted: part.target.len(),
            floor: part.floor,
            min_serving: self.fleet.product_of(part.group).min_serving,
        };
        let id = self.job_id(job);
        let waited = &mut self.jobs.records[id].waited;
        let waited_for = match job {
            // An add has one step (the replica it brings stays): its note moves into it.
            Job::Add(..) => waited.take(),
            // Instantaneous work reports its first wait on each of its steps.
            Job::Instant(_) => waited.clone(),
        };
        let priority = self
            .priority_notes
            .entry(facts)
            .or_insert_with(|| facts.note())
            .clone();
        Reason {
            after,
            waited_for,
            rate_limited_by: None,
            priority,
        }
    }

    /// Steady-heat deltas of one replica changing from `from` to `to` (either may be absent).
    fn state_deltas(
        &self,
        group: GroupId,
        node: NodeId,
        from: Option<StateId>,
        to: Option<StateId>,
    ) -> Vec<(usize, f64)> {
        let heat = &self.fleet.group(group).heat;
        // Added then taken from zero, per dimension, exactly as a delta vector built first
        // would be: the sums must not change a bit.
        let delta = |x: usize| {
            let mut d = 0.0;
            if let Some(s) = to {
                d += heat[s.index()][x];
            }
            if let Some(s) = from {
                d -= heat[s.index()][x];
            }
            d
        };
        self.ledger
            .chain_deltas(self.fleet, node, self.fleet.dims_count(), delta)
    }

    /// Books an instantaneous step's steady-heat changes, plus the bursts its transitions
    /// declare (`transition_heat`: extra heat on the node for a while), if all of it fits
    /// now; otherwise parks `job` on the resource that overflows and returns `None`.
    fn try_book_instant(
        &mut self,
        job: Job,
        group: GroupId,
        deltas: &[(usize, f64)],
        transitions: &[(NodeId, StateId, StateId)],
        what: &str,
    ) -> Option<Burst> {
        let fleet = self.fleet;
        let mut burst = Burst {
            end: self.now,
            deltas: Vec::new(),
        };
        for &(node, from, to) in transitions {
            if let Some(b) = fleet.group(group).burst(from, to) {
                burst.end = burst.end.max(self.now + b.seconds);
                burst
                    .deltas
                    .extend(self.ledger.heat_deltas(fleet, node, &b.heat));
            }
        }
        burst.deltas = merge(std::mem::take(&mut burst.deltas));
        let all: Cow<[(usize, f64)]> = if burst.deltas.is_empty() {
            Cow::Borrowed(deltas)
        } else {
            Cow::Owned(merge(deltas.iter().chain(&burst.deltas).copied().collect()))
        };
        if let Some(r) = self.ledger.first_overflow(&all) {
            let resources = self.ledger.resources;
            let need = need_on(&all, r);
            let what = what.to_string();
            self.park_on_resource(job, r, (need, need), move || {
                format!("{what}: {} is full", describe(fleet, &resources, r))
            });
            return None;
        }
        self.book(deltas, 1.0);
        self.book(&burst.deltas, 1.0);
        Some(burst)
    }

    /// Records a step's burst and schedules its release at the burst's end.
    fn start_burst(&mut self, id: u32, burst: Burst) {
        if burst.deltas.is_empty() {
            return;
        }
        let resources = self.ledger.resources;
        self.steps[id as usize].burst = burst
            .deltas
            .iter()
            .map(|&(r, amount)| Load {
                resource: resources.resource(r),
                amount,
            })
            .collect();
        self.active.push(Reverse((burst.end.to_bits(), id)));
        self.bursts.insert(id, burst.deltas);
    }

    /// Leader hand-offs, state transitions and drops, as many as the partition allows now.
    fn run_instant(&mut self, p: u32) {
        let job = Job::Instant(p);
        for _ in 0..64 {
            let progressed =
                self.leader_step(p, job) || self.transition_step(p, job) || self.drop_step(p, job);
            if !progressed {
                return;
            }
        }
    }

    fn leader_step(&mut self, p: u32, job: Job) -> bool {
        let fleet = self.fleet;
        let part = &self.parts[p as usize];
        let model = fleet.product_of(part.group);
        let Some(leader) = model.leader else {
            return false;
        };
        let Some(&(to_node, _)) = part.target.iter().find(|t| t.1 == leader) else {
            return false;
        };
        let current_leader = part
            .live
            .iter()
            .position(|l| l.state == leader && !l.copying);
        if current_leader.is_some_and(|i| part.live[i].node == to_node) {
            return false;
        }
        let Some(new) = part.live_at(to_node).filter(|&i| !part.live[i].copying) else {
            return false;
        };
        let promote_from = part.live[new].state;
        if !model.allows(promote_from, leader) {
            // Walk the new leader toward a state that may be promoted (not through leader).
            let Some(hop) = self
                .next_hop(part.group, promote_from, leader, true)
                .filter(|&h| h != leader)
            else {
                return false;
            };
            return self.step_replica(p, job, new, hop);
        }
        let group = part.group;
        match current_leader {
            Some(old) => {
                let from_node = part.live[old].node;
                let demote_to = match demotion(model, leader, part.target_state(from_node)) {
                    Some(s) => s,
                    None => return false,
                };
                let mut deltas =
                    self.state_deltas(group, to_node, Some(promote_from), Some(leader));
                deltas.extend(self.state_deltas(group, from_node, Some(leader), Some(demote_to)));
                let merged = merge(deltas);
                let transitions = [
                    (to_node, promote_from, leader),
                    (from_node, leader, demote_to),
                ];
                let Some(burst) =
                    self.try_book_instant(job, group, &merged, &transitions, "leader hand-off")
                else {
                    return false;
                };
                let part = &mut self.parts[p as usize];
                part.live[old].state = demote_to;
                part.live[new].state = leader;
                let after = part.arrivals.clone();
                let reason = self.reason(job, after);
                let id = self.push_step(
                    p,
                    Action::HandOff {
                        from: from_node,
                        to: to_node,
                        demote_to,
                        promote_from,
                    },
                    burst.end,
                    reason,
                );
                self.start_burst(id, burst);
                true
            }
            None => {
                let deltas = self.state_deltas(group, to_node, Some(promote_from), Some(leader));
                let transitions = [(to_node, promote_from, leader)];
                let Some(burst) =
                    self.try_book_instant(job, group, &deltas, &transitions, "promotion")
                else {
                    return false;
                };
                self.parts[p as usize].live[new].state = leader;
                let after = self.parts[p as usize].arrivals.clone();
                let reason = self.reason(job, after);
                let id = self.push_step(
                    p,
                    Action::Transition {
                        node: to_node,
                        from: promote_from,
                        to: leader,
                    },
                    burst.end,
                    reason,
                );
                self.start_burst(id, burst);
                true
            }
        }
    }

    /// One transition of a replica that stays toward its target state. Entering the leader
    /// state is the hand-off's job; leaving it too, while the target has a leader elsewhere.
    fn transition_step(&mut self, p: u32, job: Job) -> bool {
        let part = &self.parts[p as usize];
        let model = self.fleet.product_of(part.group);
        let target_leader = model
            .leader
            .and_then(|l| part.target.iter().find(|t| t.1 == l).map(|t| t.0));
        for i in 0..part.live.len() {
            let live = part.live[i];
            let Some(wanted) = part.target_state(live.node) else {
                continue;
            };
            if live.copying || live.state == wanted || Some(wanted) == model.leader {
                continue;
            }
            if Some(live.state) == model.leader && target_leader.is_some() {
                continue;
            }
            let Some(hop) = self.next_hop(part.group, live.state, wanted, true) else {
                continue;
            };
            if Some(hop) == model.leader || hop == model.initial {
                continue;
            }
            return self.step_replica(p, job, i, hop);
        }
        false
    }

    /// Moves live replica `i` of partition `p` one transition, to `hop`, if its heat (and the
    /// transition's burst) fits now; parks `job` otherwise. True if it moved.
    fn step_replica(&mut self, p: u32, job: Job, i: usize, hop: StateId) -> bool {
        let part = &self.parts[p as usize];
        let (group, live) = (part.group, part.live[i]);
        let deltas = self.state_deltas(group, live.node, Some(live.state), Some(hop));
        let transitions = [(live.node, live.state, hop)];
        let Some(burst) =
            self.try_book_instant(job, group, &deltas, &transitions, "state transition")
        else {
            return false;
        };
        self.parts[p as usize].live[i].state = hop;
        let reason = self.reason(job, Vec::new());
        let id = self.push_step(
            p,
            Action::Transition {
                node: live.node,
                from: live.state,
                to: hop,
            },
            burst.end,
            reason,
        );
        self.start_burst(id, burst);
        true
    }

    /// Drops one replica that is leaving, if the partition keeps enough serving replicas
    /// without it (make-before-break), or walks it toward a state it can be dropped from.
    fn drop_step(&mut self, p: u32, job: Job) -> bool {
        self.drop_leaving(p, job, false)
    }

    fn drop_leaving(&mut self, p: u32, job: Job, early: bool) -> bool {
        let part = &self.parts[p as usize];
        let model = self.fleet.product_of(part.group);
        let serving = part.serving();
        let replacements_pending =
            part.missing().next().is_some() || part.live.iter().any(|l| l.copying);
        let may_drop =
            serving > part.floor && (early || serving > part.target.len() || !replacements_pending);
        if !may_drop {
            return false;
        }
        for i in 0..part.live.len() {
            let live = part.live[i];
            if live.copying || live.reading > 0 || part.target_state(live.node).is_some() {
                continue;
            }
            if Some(live.state) == model.leader {
                // A leader leaves by hand-off when the target has one; else it steps down.
                let target_has_leader = part.target.iter().any(|t| Some(t.1) == model.leader);
                if target_has_leader {
                    continue;
                }
            }
            if !model.allows(live.state, model.initial) {
                let Some(hop) = self.next_hop(part.group, live.state, model.initial, true) else {
                    continue;
                };
                if hop == model.initial {
                    continue;
                }
                return self.step_replica(p, job, i, hop);
            }
            let group = part.group;
            let deltas = self.state_deltas(group, live.node, Some(live.state), None);
            let transitions = [(live.node, live.state, model.initial)];
            let Some(burst) = self.try_book_instant(job, group, &deltas, &transitions, "drop")
            else {
                return false;
            };
            let part = &mut self.parts[p as usize];
            part.live.remove(i);
            let after = part.arrivals.clone();
            let mut reason = self.reason(job, after);
            if early {
                reason.waited_for = Some(format!(
                    "capacity deadlock: dropped before its replacement arrived; the partition keeps {} serving replicas (min_serving {})",
                    serving - 1,
                    model.min_serving
                ));
            }
            let id = self.push_step(
                p,
                Action::Drop {
                    node: live.node,
                    from: live.state,
                },
                burst.end,
                reason,
            );
            self.start_burst(id, burst);
            // A drop frees capacity others may wait on, and may let this partition's own
            // copies start (their target was full of the replica leaving).
            let missing: Vec<NodeId> = self.parts[p as usize].missing().map(|m| m.0).collect();
            for node in missing {
                self.enqueue(Job::Add(p, node));
            }
            return true;
        }
        false
    }

    /// Nothing runs and nothing will finish: let partitions with copies stuck on capacity
    /// drop a leaving replica early where their floor allows. True if anything changed.
    fn break_deadlock(&mut self) -> bool {
        let mut stuck: Vec<u32> = self
            .parked
            .values()
            .flatten()
            .chain(
                self.resource_waiters
                    .iter()
                    .flatten()
                    .flat_map(|w| w.jobs.keys()),
            )
            .filter_map(|key| match key.job() {
                Job::Add(p, _) => Some(p),
                Job::Instant(_) => None,
            })
            .collect();
        stuck.sort_unstable();
        stuck.dedup();
        let mut changed = false;
        for p in stuck {
            if self.drop_leaving(p, Job::Instant(p), true) {
                changed = true;
                self.enqueue(Job::Instant(p));
            }
        }
        if !changed && !self.crawl {
            // Still nothing: what is parked on capacity waits for room that no copy in
            // flight will free. A slow copy beats none.
            self.crawl = true;
            let resources: Vec<usize> = (0..self.resource_waiters.len())
                .filter(|&r| self.resource_waiters[r].is_some())
                .collect();
            for r in resources {
                self.wake_resource(r, true);
                changed = true;
            }
        }
        changed
    }

    fn try_add(&mut self, p: u32, node: NodeId) {
        let fleet = self.fleet;
        let job = Job::Add(p, node);
        let part = &self.parts[p as usize];
        let Some(wanted) = part.target_state(node) else {
            return;
        };
        if part.live_at(node).is_some() {
            return;
        }
        let group_id = part.group;
        let group = fleet.group(group_id);
        let model = fleet.product_of(group_id);
        // The replica arrives in the first state on its way to the target state; never
        // straight into the leader state while the partition has a leader.
        let Some(arrival) = self
            .next_hop(group_id, model.initial, wanted, true)
            .or_else(|| self.next_hop(group_id, model.initial, wanted, false))
        else {
            self.park(job, Wait::Never, || {
                format!(
                    "the state model has no path from {} to {}",
                    model.state_name(model.initial),
                    model.state_name(wanted)
                )
            });
            return;
        };
        let has_leader = part.live.iter().any(|l| Some(l.state) == model.leader);
        if Some(arrival) == model.leader && has_leader {
            self.parts[p as usize].waiting_for_source.push(node);
            let id = self.job_id(job);
            self.jobs.records[id]
                .waited
                .get_or_insert_with(|| "the partition's leader must step down first".to_string());
            return;
        }
        let steady = self.state_deltas(group_id, node, None, Some(arrival));
        if let Some(r) = self.ledger.first_overflow(&steady) {
            let resources = self.ledger.resources;
            let need = need_on(&steady, r);
            self.park_on_resource(job, r, (need, need), move || {
                format!(
                    "no room for the replica's steady heat: {}",
                    describe(fleet, &resources, r)
                )
            });
            return;
        }
        // Serving replicas are the possible sources.
        let sources = || part.live.iter().filter(|l| !l.copying).map(|l| l.node);
        if sources().next().is_none() {
            if part.live.iter().any(|l| l.copying) {
                self.parts[p as usize].waiting_for_source.push(node);
                return;
            }
            // Nothing to copy from (a new partition, or every replica lost): start empty.
            let transitions = [(node, model.initial, arrival)];
            let Some(burst) = self.try_book_instant(job, group_id, &steady, &transitions, "start")
            else {
                return;
            };
            self.parts[p as usize].live.push(Live {
                node,
                state: arrival,
                copying: false,
                reading: 0,
            });
            let mut reason = self.reason(job, Vec::new());
            reason.rate_limited_by =
                Some("no serving replica to copy from: the replica starts empty".to_string());
            let id = self.push_step(
                p,
                Action::Start {
                    node,
                    state: arrival,
                },
                burst.end,
                reason,
            );
            self.start_burst(id, burst);
            self.parts[p as usize].arrivals.push(id);
            self.enqueue(Job::Instant(p));
            return;
        }
        if self.node_moves[node.index()] >= self.options.moves_per_node_max {
            let count = self.node_moves[node.index()];
            self.park(job, Wait::Node(node), move || {
                format!(
                    "node {} has {count} copies in flight (moves_per_node_max)",
                    fleet.topology.node_name(node)
                )
            });
            return;
        }
        let urgent = part.urgent;
        let bytes = group.size_bytes();
        // Windows: outside one, a non-urgent copy waits; inside, it must finish by its end.
        let mut rate_floor = if self.crawl {
            0.0
        } else {
            self.options.rate_min
        };
        let mut window_note = None;
        if !urgent && !self.options.windows.is_empty() {
            match self.window_end() {
                None => {
                    self.park(job, Wait::Window, || {
                        "outside every maintenance window".to_string()
                    });
                    return;
                }
                Some(end) => {
                    let needed = bytes / ((end - self.now).max(1e-9) * BYTES_PER_MB);
                    if needed > rate_floor {
                        rate_floor = needed;
                        window_note =
                            Some(format!("must finish by the window's end at t={end:.0}s"));
                    }
                }
            }
        }
        let budget_room = self.options.bytes_per_hour_max.map_or(f64::INFINITY, |b| {
            (b / 3600.0 / BYTES_PER_MB - self.rate_in_flight).max(0.0)
        });
        // Sources nearest first (a copy inside the rack loads no uplink), followers before
        // the leader (it serves the writes), then by id.
        let mut ranked = std::mem::take(&mut self.scratch.ranked);
        ranked.clear();
        ranked.extend(sources().map(|s| {
            let is_leader = part
                .live
                .iter()
                .any(|l| l.node == s && Some(l.state) == model.leader);
            (Reverse(self.network.shared_levels(s, node)), is_leader, s)
        }));
        ranked.sort();
        // Steady heat goes first: the copy's rate is what the resources spare beyond it.
        self.ledger.apply(&steady, 1.0);
        // What stopped the first source tried: the wait, (for a resource) the room it needs
        // there, and why.
        let mut first_block: Option<(Wait, (f64, f64), Blocker)> = None;
        let mut candidates = std::mem::take(&mut self.scratch.candidates);
        candidates.clear();
        for &(_, _, source) in &ranked {
            if self.node_moves[source.index()] >= self.options.moves_per_node_max {
                first_block.get_or_insert((
                    Wait::Node(source),
                    (0.0, 0.0),
                    Blocker::SourceBusy(source, self.node_moves[source.index()]),
                ));
                continue;
            }
            let counted = self.counted_domains(source, node);
            if let Some(&(domain, max)) = counted
                .iter()
                .find(|(d, max)| self.domain_moves.get(d).copied().unwrap_or(0) >= *max)
            {
                first_block.get_or_insert((
                    Wait::Domain(domain),
                    (0.0, 0.0),
                    Blocker::DomainBusy(domain, max),
                ));
                continue;
            }
            let unit = self
                .network
                .per_rate(fleet, &self.ledger.resources, source, node);
            let (room, limiting) = self.ledger.rate_room(&unit);
            let mut rate = self.options.rate_max.min(room).min(budget_room);
            if bytes == 0.0 {
                rate = self.options.rate_max;
            }
            if (rate + 1e-12 < rate_floor || rate <= 0.0) && bytes > 0.0 {
                let block = if budget_room <= room && budget_room < rate_floor {
                    if self.rate_in_flight > 0.0 {
                        // Copies in flight hold the budget; they give it back as they end.
                        (Wait::Budget, (0.0, 0.0), Blocker::Budget)
                    } else if window_note.is_some() {
                        // The whole budget is too slow to finish before this window closes:
                        // the next window leaves more time.
                        (Wait::Window, (0.0, 0.0), Blocker::BudgetTooSlowForWindow)
                    } else {
                        (Wait::Never, (0.0, 0.0), Blocker::BudgetBelowRateMin)
                    }
                } else if let Some(r) = limiting {
                    if window_note.is_some() && room >= self.options.rate_min {
                        (Wait::Window, (0.0, 0.0), Blocker::SlowForWindow(r, room))
                    } else {
                        let coefficient = unit.iter().find(|u| u.0 == r).map_or(1.0, |u| u.1);
                        let need =
                            rate_floor.max(1e-6) * coefficient + need_on(&steady, r).max(0.0);
                        let take =
                            self.options.rate_max * coefficient + need_on(&steady, r).max(0.0);
                        (Wait::Resource(r), (need, take), Blocker::Slow(r, room))
                    }
                } else {
                    (Wait::Window, (0.0, 0.0), Blocker::Window)
                };
                first_block.get_or_insert(block);
                continue;
            }
            let full = rate >= self.options.rate_max;
            let topology = &fleet.topology;
            candidates.push(Candidate {
                source,
                rate,
                unit,
                counted,
                room,
                limiting,
                crosses_region: topology.region_of(source) != topology.region_of(node),
            });
            if full {
                break; // No source can be faster.
            }
        }
        let picked = pick_source(&mut candidates);
        (self.scratch.ranked, self.scratch.candidates) = (ranked, candidates);
        let Some(Candidate {
            source,
            rate,
            unit,
            counted,
            room,
            limiting,
            ..
        }) = picked
        else {
            self.ledger.apply(&steady, -1.0);
            let (wait, need, blocker) =
                first_block.unwrap_or((Wait::Budget, (0.0, 0.0), Blocker::Budget));
            let (resources, rate_min) = (self.ledger.resources, self.options.rate_min);
            let why = move || blocker.render(fleet, &resources, rate_min);
            match wait {
                Wait::Resource(r) => self.park_on_resource(job, r, need, why),
                _ => self.park(job, wait, why),
            }
            return;
        };
        let limited_by = if rate < self.options.rate_min {
            limiting.map(|r| {
                format!(
                    "{}: {CRAWL_NOTE} ({room:.1} MB/s free)",
                    self.ledger.name(fleet, r)
                )
            })
        } else if rate >= self.options.rate_max {
            None
        } else if budget_room <= room {
            Some("the bytes_per_hour budget".to_string())
        } else {
            limiting.map(|r| {
                format!(
                    "{} (free for copies: {room:.0} MB/s)",
                    self.ledger.name(fleet, r)
                )
            })
        };
        let deltas: Vec<(usize, f64)> = unit.iter().map(|&(r, c)| (r, c * rate)).collect();
        self.ledger.apply(&deltas, 1.0);
        self.node_moves[node.index()] += 1;
        self.node_moves[source.index()] += 1;
        let counted_domains: Vec<DomainId> = counted.iter().map(|c| c.0).collect();
        for d in &counted_domains {
            *self.domain_moves.entry(*d).or_default() += 1;
        }
        self.rate_in_flight += rate;
        let duration = if bytes == 0.0 {
            0.0
        } else {
            bytes / (rate * BYTES_PER_MB)
        };
        let end = self.now + duration;
        let loads: Vec<Load> = deltas
            .iter()
            .map(|&(r, amount)| Load {
                resource: self.ledger.resources.resource(r),
                amount,
            })
            .collect();
        let part = &mut self.parts[p as usize];
        if let Some(i) = part.live_at(source) {
            part.live[i].reading += 1;
        }
        part.live.push(Live {
            node,
            state: arrival,
            copying: true,
            reading: 0,
        });
        let mut reason = self.reason(job, Vec::new());
        reason.rate_limited_by = limited_by.or(window_note);
        let id = self.push_step(
            p,
            Action::Replicate {
                source,
                target: node,
                state: arrival,
                bytes,
                rate,
                loads,
            },
            end,
            reason,
        );
        self.copies.insert(
            id,
            Copy {
                step: id,
                part: p,
                node,
                source,
                rate,
                deltas,
                counted_domains,
            },
        );
        self.active.push(Reverse((end.to_bits(), id)));
    }

    /// Domains at levels with a concurrency limit that a copy between these nodes counts in.
    fn counted_domains(&self, source: NodeId, target: NodeId) -> Vec<(DomainId, u32)> {
        let topology = &self.fleet.topology;
        let mut out: Vec<(DomainId, u32)> = Vec::new();
        for &(level, max) in &self.options.moves_per_domain_max {
            for node in [source, target] {
                if let Some(d) = topology.ancestor_at(node, level) {
                    if !out.iter().any(|o| o.0 == d) {
                        out.push((d, max));
                    }
                }
            }
        }
        out
    }

    fn finish_copy(&mut self, step: u32) {
        let Some(copy) = self.copies.remove(&step) else {
            return;
        };
        self.book(&copy.deltas, -1.0);
        self.node_moves[copy.node.index()] -= 1;
        self.node_moves[copy.source.index()] -= 1;
        self.wake_some(Wait::Node(copy.node));
        self.wake_some(Wait::Node(copy.source));
        for d in &copy.counted_domains {
            if let Some(count) = self.domain_moves.get_mut(d) {
                *count -= 1;
            }
            self.wake_some(Wait::Domain(*d));
        }
        self.rate_in_flight -= copy.rate;
        self.wake_some(Wait::Budget);
        let part = &mut self.parts[copy.part as usize];
        if let Some(i) = part.live_at(copy.node) {
            part.live[i].copying = false;
        }
        if let Some(i) = part.live_at(copy.source) {
            part.live[i].reading = part.live[i].reading.saturating_sub(1);
        }
        part.arrivals.push(copy.step);
        let waiting = std::mem::take(&mut part.waiting_for_source);
        for node in waiting {
            self.enqueue(Job::Add(copy.part, node));
        }
        self.enqueue(Job::Instant(copy.part));
    }

    /// Why a job is still parked at the end: what it waits on, in words.
    fn blocked_reason(&self, job: Job) -> Option<String> {
        let fleet = self.fleet;
        let id = self.job_id(job);
        let (wait, need) = self.jobs.records[id].still_waiting?;
        Some(match wait {
            Wait::Resource(r) => format!(
                "waits for {:.0} free on {} ({:.0} free at the end)",
                need,
                self.ledger.name(fleet, r),
                self.ledger.free(r).max(0.0)
            ),
            Wait::Node(n) => format!(
                "waits for a copy slot on node {}",
                fleet.topology.node_name(n)
            ),
            Wait::Domain(d) => {
                format!("waits for a copy slot in {}", fleet.topology.domain(d).name)
            }
            Wait::Budget => "waits for the bytes_per_hour budget".to_string(),
            Wait::Window if self.next_window_start().is_none() => {
                "no maintenance window is left that is long enough for it".to_string()
            }
            Wait::Window => "waits for a maintenance window long enough".to_string(),
            Wait::Never => self.jobs.records[id].waited.clone().unwrap_or_default(),
        })
    }

    fn blocked(&self) -> Vec<Blocked> {
        let fleet = self.fleet;
        let mut out = Vec::new();
        for (p, part) in self.parts.iter().enumerate() {
            if part.done() {
                continue;
            }
            let group = fleet.group(part.group);
            let model = fleet.product_of(part.group);
            let mut what = Vec::new();
            let mut why = Vec::new();
            for (node, state) in part.missing() {
                what.push(format!(
                    "add {} on {}",
                    model.state_name(state),
                    fleet.topology.node_name(node)
                ));
                if let Some(w) = self.blocked_reason(Job::Add(p as u32, node)) {
                    why.push(w);
                }
            }
            for live in &part.live {
                match part.target_state(live.node) {
                    None => what.push(format!(
                        "drop {} on {}",
                        model.state_name(live.state),
                        fleet.topology.node_name(live.node)
                    )),
                    Some(s) if s != live.state => what.push(format!(
                        "{} on {} to {}",
                        model.state_name(live.state),
                        fleet.topology.node_name(live.node),
                        model.state_name(s)
                    )),
                    _ => {}
                }
            }
            if let Some(w) = self.blocked_reason(Job::Instant(p as u32)) {
                why.push(w);
            }
            if self.gave_up {
                why.push(
                    "the scheduler stopped at its bound on rounds, which no real plan reaches: please report this fleet and change".to_string(),
                );
            }
            if why.is_empty() {
                why.push(format!(
                    "waiting for replacements: {} serving, floor {} (min_serving {})",
                    part.serving(),
                    part.floor,
                    model.min_serving
                ));
            }
            out.push(Blocked {
                group: group.id,
                partition: part.partition,
                what: what.join("; "),
                why: why.join("; "),
            });
        }
        out
    }
}

/// The amount `deltas` put on resource `r`.
/// A source a copy could start from now, at `rate`.
struct Candidate {
    source: NodeId,
    rate: f64,
    /// Load per MB/s on each resource of the route.
    unit: Vec<(usize, f64)>,
    counted: Vec<(DomainId, u32)>,
    /// The rate the route spares, and the resource that sets it.
    room: f64,
    limiting: Option<usize>,
    /// Its bytes would cross a region link: scarce, slow to cross, and paid per GB.
    crosses_region: bool,
}

/// The fastest source, the nearest among equally fast ones (candidates come nearest first).
/// Rates are capped at `rate_max`, so locality wins whenever it costs no speed; but a near
/// source behind a full spine would crawl while a far one copies at full speed, and a slow
/// copy holds its nodes' concurrency slots and its partition's drop for as long as it runs.
/// (Keeping a nearer source down to half or a quarter of the fastest rate was measured: the
/// 1M-replica zone evacuation took 87–90 h instead of 84 h, and 1547 h when the nearest
/// source was always kept.)
///
/// A source in the target's own region is kept while it copies at least
/// `SAME_REGION_SHARE_MIN` of the fastest rate: bytes over a region link cost money and the
/// link's room, which copies that must cross (no source in the region) need more.
fn pick_source(candidates: &mut Vec<Candidate>) -> Option<Candidate> {
    let fastest_in = |within: bool| {
        candidates
            .iter()
            .filter(|c| !within || !c.crosses_region)
            .map(|c| c.rate)
            .fold(0.0, f64::max)
    };
    let (fastest, fastest_within) = (fastest_in(false), fastest_in(true));
    let within = fastest_within > 0.0 && fastest_within >= fastest * SAME_REGION_SHARE_MIN;
    let bar = if within { fastest_within } else { fastest };
    let picked = candidates
        .iter()
        .position(|c| (!within || !c.crosses_region) && c.rate >= bar * (1.0 - 1e-9))?;
    Some(candidates.swap_remove(picked))
}

/// See `pick_source`.
const SAME_REGION_SHARE_MIN: f64 = 0.5;

fn need_on(deltas: &[(usize, f64)], r: usize) -> f64 {
    deltas.iter().filter(|d| d.0 == r).map(|d| d.1).sum()
}

/// Sums deltas on the same resource (a hand-off between nodes that share domains), in the
/// order they come (the sort is stable).
fn merge(mut deltas: Vec<(usize, f64)>) -> Vec<(usize, f64)> {
    deltas.sort_by_key(|d| d.0);
    // `dedup_by` hands each delta with the one kept before it: summed into that one, in order.
    deltas.dedup_by(|next, kept| {
        let same = next.0 == kept.0;
        if same {
            kept.1 += next.1;
        }
        same
    });
    deltas
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fields of a key compared one by one, as the scheduler's queues once held them.
    type Fields = (
        u8,
        Reverse<bool>,
        Reverse<i32>,
        Reverse<usize>,
        Reverse<u64>,
        Job,
        u32,
    );

    fn fields(job: Job, id: u32, rank: Rank) -> Fields {
        let kind = u8::from(matches!(job, Job::Add(..)));
        (
            kind,
            Reverse(rank.urgent),
            Reverse(rank.priority),
            Reverse(rank.shortfall),
            Reverse(rank.size_bytes.to_bits()),
            job,
            id,
        )
    }

    fn job_and_rank() -> impl Strategy<Value = (Job, u32, Rank)> {
        let job = prop_oneof![
            (0u32..4).prop_map(Job::Instant),
            (0u32..4, 0u32..4).prop_map(|(p, n)| Job::Add(p, NodeId(n))),
            any::<u32>().prop_map(Job::Instant),
            (any::<u32>(), any::<u32>()).prop_map(|(p, n)| Job::Add(p, NodeId(n))),
        ];
        let rank = (
            any::<bool>(),
            prop_oneof![-2i32..3, any::<i32>()],
            prop_oneof![0usize..4, 0..=SHORTFALL_MAX],
            prop_oneof![Just(0.0), Just(1e9), any::<f64>()],
        );
        (job, prop_oneof![0u32..3, any::<u32>()], rank).prop_map(|(job, id, rank)| {
            let (urgent, priority, shortfall, size_bytes) = rank;
            let rank = match job {
                Job::Instant(_) => Rank::NONE,
                Job::Add(..) => Rank {
                    urgent,
                    priority,
                    shortfall,
                    size_bytes,
                },
            };
            (job, id, rank)
        })
    }

    proptest! {
        #[test]
        fn packed_keys_sort_as_their_fields(a in job_and_rank(), b in job_and_rank()) {
            let (key_a, key_b) = (Key::new(a.0, a.1, a.2), Key::new(b.0, b.1, b.2));
            let (fields_a, fields_b) = (fields(a.0, a.1, a.2), fields(b.0, b.1, b.2));
            prop_assert_eq!(key_a.cmp(&key_b), fields_a.cmp(&fields_b));
            prop_assert_eq!(key_a.job(), a.0);
        }
    }
}

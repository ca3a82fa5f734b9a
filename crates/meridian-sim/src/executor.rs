//! Carries out a strategy's intents on its world, as agents would: moves start at once; a
//! planner's plan starts each step at its planned time, and only once every step planned to
//! end before it has ended for real — copies slowed by throttles or shared links push the
//! rest of the plan back instead of breaking its order (a drop never overtakes the copy that
//! replaces it). A step the world no longer allows (its node died) is skipped, and with it
//! the rest of its partition's steps.

use std::collections::{BTreeSet, HashSet};

use meridian_model::{Fleet, NodeId};
use meridian_planner::path::{Network, Resources};
use meridian_planner::{Action, Plan, Step};

use crate::load::copy_unit;
use crate::strategy::{Move, MoveAction};
use crate::world::{PartId, Transfer, World};

/// What the executor needs of the fleet to start copies.
pub struct Context<'a> {
    pub fleet: &'a Fleet,
    pub network: &'a Network,
    pub resources: Resources,
    /// Nodes that are down: a leader there is fenced, one that is up still leads.
    pub down: &'a [bool],
}

#[derive(Debug, Default)]
pub struct Executed {
    pub copies_started: u64,
    pub steps_skipped: u64,
    /// State changes of replicas already in place (starts, promotions, demotions): each may
    /// carry its group's transition burst.
    pub transitions: Vec<Transition>,
}

/// A replica of `part` on `node` went from one state to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub part: PartId,
    pub node: NodeId,
    pub from: meridian_model::StateId,
    pub to: meridian_model::StateId,
}

/// A plan being carried out.
pub struct PlanRun {
    pub id: u32,
    steps: Vec<Step>,
    /// Each step's partition.
    parts: Vec<PartId>,
    next: usize,
    /// Steps not yet ended, by (planned end, position).
    open: BTreeSet<(u64, usize)>,
    skipped_parts: HashSet<PartId>,
    /// Per partition the plan touches, the serving replicas it must keep: its product's
    /// minimum, or what it had when the plan was made if that was fewer (as the planner's
    /// floor).
    floors: std::collections::HashMap<PartId, usize>,
}

impl PlanRun {
    pub fn new(id: u32, plan: Plan, ctx: &Context, world: &World) -> PlanRun {
        let index = &world.parts;
        let mut steps = plan.steps;
        steps.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.id.cmp(&b.id)));
        let open = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.end.to_bits(), i))
            .collect();
        let parts: Vec<PartId> = steps
            .iter()
            .map(|s| index.id(s.group, s.partition))
            .collect();
        let floors = floors(&parts, ctx, world);
        PlanRun {
            id,
            steps,
            parts,
            floors,
            next: 0,
            open,
            skipped_parts: HashSet::new(),
        }
    }

    /// Steps not yet started.
    pub fn pending(&self) -> usize {
        self.steps.len() - self.next
    }

    /// Every step has started, and every copy among them has landed or was lost.
    pub fn is_done(&self) -> bool {
        self.open.is_empty() && self.pending() == 0
    }

    /// The partitions with a step of this plan not yet ended.
    pub fn parts_in_progress(&self) -> impl Iterator<Item = PartId> + '_ {
        self.open.iter().map(|&(_, i)| self.parts[i])
    }

    /// Starts no more steps.
    pub fn cancel(&mut self) {
        for i in self.next..self.steps.len() {
            self.open.remove(&(self.steps[i].end.to_bits(), i));
        }
        self.next = self.steps.len();
    }

    /// A copy this plan started has landed (or was lost).
    pub fn ended(&mut self, position: usize) {
        if let Some(step) = self.steps.get(position) {
            self.open.remove(&(step.end.to_bits(), position));
        }
    }

    /// A copy this plan started was given up: the rest of its partition's steps are skipped
    /// (a drop must never follow a copy that did not land).
    pub fn abort(&mut self, position: usize, part: PartId) {
        self.ended(position);
        self.skipped_parts.insert(part);
    }

    /// Starts every step that is due at `t_s` and whose predecessors have ended.
    pub fn start_due(&mut self, t_s: f64, ctx: &Context, world: &mut World) -> Executed {
        let mut executed = Executed::default();
        while self.next < self.steps.len() {
            let i = self.next;
            let step = &self.steps[i];
            if step.start > t_s + 1e-9 {
                break;
            }
            let key = (step.start.to_bits(), i);
            if self.open.iter().next().is_some_and(|&first| first < key) {
                break; // Something planned to end before this starts is still running.
            }
            self.next += 1;
            let part = self.parts[i];
            let at = crate::world::StepRef {
                plan: self.id,
                position: i as u32,
            };
            let floor = self.floors.get(&part).copied().unwrap_or(0);
            let started = !self.skipped_parts.contains(&part)
                && apply_step(step, (at, floor), ctx, world, &mut executed.transitions);
            if !started {
                executed.steps_skipped += 1;
                self.skipped_parts.insert(part);
            }
            let is_copy = matches!(step.action, Action::Replicate { .. });
            if is_copy && started {
                executed.copies_started += 1;
            } else {
                self.open.remove(&(step.end.to_bits(), i));
            }
        }
        executed
    }
}

/// Each partition's floor of serving replicas (see `PlanRun::floors`).
fn floors(
    parts: &[PartId],
    ctx: &Context,
    world: &World,
) -> std::collections::HashMap<PartId, usize> {
    parts
        .iter()
        .map(|&part| {
            let (group, _) = world.parts.locate(part);
            let model = ctx.fleet.product_of(group);
            let serving = world.replicas[part]
                .iter()
                .filter(|h| is_serving(h, model, ctx))
                .count();
            (part, (model.min_serving as usize).min(serving))
        })
        .collect()
}

fn is_serving(h: &crate::world::Held, model: &meridian_model::StateModel, ctx: &Context) -> bool {
    h.ready && h.state != model.initial && !ctx.down[h.node.index()]
}

fn apply_step(
    step: &Step,
    (at, floor): (crate::world::StepRef, usize),
    ctx: &Context,
    world: &mut World,
    transitions: &mut Vec<Transition>,
) -> bool {
    let part = world.parts.id(step.group, step.partition);
    let model = ctx.fleet.product_of(step.group);
    let applied = match &step.action {
        Action::Replicate {
            source,
            target,
            state,
            bytes,
            rate,
            ..
        } => {
            let transfer = transfer(ctx, part, (*source, *target), *bytes, *rate, None);
            world.start_copy(
                part,
                *state,
                Transfer {
                    step: Some(at),
                    ..transfer
                },
            )
        }
        Action::Start { node, state } => {
            !leads_elsewhere(world, ctx, part, *node, *state)
                && world.start_empty(part, *node, *state)
        }
        Action::Transition { node, from, to } => {
            !leads_elsewhere(world, ctx, part, *node, *to)
                && world.set_state(part, *node, *from, *to)
        }
        Action::HandOff {
            from,
            to,
            demote_to,
            ..
        } => match model.leader {
            Some(leader) => world.hand_off(part, (*from, *demote_to), (*to, leader)),
            None => false,
        },
        Action::Drop { node, .. } => {
            keeps_floor(world, ctx, part, *node, floor) && world.drop_replica(part, *node)
        }
    };
    if applied {
        transitions.extend(transitions_of(&step.action, part, model));
    }
    applied
}

/// Whether making the replica on `node` enter `state` would give its partition a second
/// leader: another is serving already (the product elected one after the plan was made).
/// Agents refuse such a promotion, as fencing makes them.
fn leads_elsewhere(
    world: &World,
    ctx: &Context,
    part: PartId,
    node: NodeId,
    state: meridian_model::StateId,
) -> bool {
    let (group, _) = world.parts.locate(part);
    let leader = ctx.fleet.product_of(group).leader;
    leader == Some(state)
        && world.replicas[part]
            .iter()
            .any(|h| h.node != node && h.ready && h.state == state && !ctx.down[h.node.index()])
}

/// Whether the partition keeps `floor` serving replicas without the one on `node`. The plan
/// checked it when it was made; a node that died since may have taken one of the replicas it
/// counted on, and agents re-check before they drop.
fn keeps_floor(world: &World, ctx: &Context, part: PartId, node: NodeId, floor: usize) -> bool {
    let (group, _) = world.parts.locate(part);
    let model = ctx.fleet.product_of(group);
    let dropping_serving = world
        .held_at(part, node)
        .is_some_and(|h| is_serving(h, model, ctx));
    if !dropping_serving {
        return true; // A copy in progress or a replica on a dead node serves nobody.
    }
    let serving = world.replicas[part]
        .iter()
        .filter(|h| is_serving(h, model, ctx))
        .count();
    serving > floor
}

/// The state changes an applied step made to replicas in place.
fn transitions_of(
    action: &Action,
    part: PartId,
    model: &meridian_model::StateModel,
) -> Vec<Transition> {
    match *action {
        Action::Start { node, state } => vec![Transition {
            part,
            node,
            from: model.initial,
            to: state,
        }],
        Action::Transition { node, from, to } => vec![Transition {
            part,
            node,
            from,
            to,
        }],
        Action::HandOff {
            from,
            to,
            demote_to,
            promote_from,
        } => match model.leader {
            Some(leader) => vec![
                Transition {
                    part,
                    node: from,
                    from: leader,
                    to: demote_to,
                },
                Transition {
                    part,
                    node: to,
                    from: promote_from,
                    to: leader,
                },
            ],
            None => Vec::new(),
        },
        Action::Replicate { .. } | Action::Drop { .. } => Vec::new(),
    }
}

fn transfer(
    ctx: &Context,
    part: PartId,
    (source, target): (NodeId, NodeId),
    bytes: f64,
    rate_mbps: f64,
    then_drop: Option<NodeId>,
) -> Transfer {
    Transfer {
        part,
        source,
        target,
        bytes_left: bytes,
        bytes_total: bytes,
        rate_wanted: rate_mbps,
        rate: rate_mbps,
        unit: copy_unit(ctx.fleet, ctx.network, &ctx.resources, source, target),
        then_drop,
        step: None,
        stalled_s: 0.0,
    }
}

/// Starts moves now, in order; returns how many copies started and how many moves the world
/// refused (e.g. a target that already holds the partition).
pub fn start_moves(moves: &[Move], ctx: &Context, world: &mut World) -> Executed {
    let mut executed = Executed::default();
    for m in moves {
        let (group, _) = world.parts.locate(m.part);
        let started = match &m.action {
            MoveAction::Copy {
                source,
                target,
                state,
                rate_mbps,
                then_drop,
            } => {
                let bytes = ctx.fleet.group(group).size_bytes();
                let t = transfer(
                    ctx,
                    m.part,
                    (*source, *target),
                    bytes,
                    *rate_mbps,
                    *then_drop,
                );
                let ok = world.start_copy(m.part, *state, t);
                executed.copies_started += u64::from(ok);
                ok
            }
            MoveAction::Start { node, state } => {
                let model = ctx.fleet.product_of(group);
                let started = !leads_elsewhere(world, ctx, m.part, *node, *state)
                    && world.start_empty(m.part, *node, *state);
                if started {
                    executed.transitions.extend(transitions_of(
                        &Action::Start {
                            node: *node,
                            state: *state,
                        },
                        m.part,
                        model,
                    ));
                }
                started
            }
            MoveAction::HandOff { from, to } => {
                let model = ctx.fleet.product_of(group);
                let promote_from = world.held_at(m.part, *to).map(|h| h.state);
                let demote_to = model
                    .leader
                    .and_then(|leader| leader_steps_down_to(model, leader));
                let handed = match (model.leader, demote_to) {
                    (Some(leader), Some(demote_to)) => {
                        world.hand_off(m.part, (*from, demote_to), (*to, leader))
                    }
                    _ => false,
                };
                if let (true, Some(promote_from), Some(demote_to)) =
                    (handed, promote_from, demote_to)
                {
                    let action = Action::HandOff {
                        from: *from,
                        to: *to,
                        demote_to,
                        promote_from,
                    };
                    executed
                        .transitions
                        .extend(transitions_of(&action, m.part, model));
                }
                handed
            }
            MoveAction::Drop { node } => world.drop_replica(m.part, *node),
        };
        executed.steps_skipped += u64::from(!started);
    }
    executed
}

/// The serving state a leader steps down to (a state it may go to that may come back).
pub fn leader_steps_down_to(
    model: &meridian_model::StateModel,
    leader: meridian_model::StateId,
) -> Option<meridian_model::StateId> {
    (0..model.states.len())
        .map(|s| meridian_model::StateId(s as u8))
        .find(|&s| {
            s != leader && s != model.initial && model.allows(leader, s) && model.allows(s, leader)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fleet::{group, node, tiny_fleet};
    use meridian_planner::{MakespanBound, Reason};

    fn step(id: u32, g: meridian_model::GroupId, (start, end): (f64, f64), action: Action) -> Step {
        Step {
            id,
            group: g,
            partition: 0,
            start,
            end,
            action,
            reason: Reason {
                after: Vec::new(),
                waited_for: None,
                rate_limited_by: None,
                priority: String::new(),
            },
            burst: Vec::new(),
        }
    }

    #[test]
    fn a_drop_waits_for_the_copy_planned_before_it_however_late_it_lands() {
        let fleet = tiny_fleet();
        let g = group(&fleet, "clicks");
        let (from, to) = (node(&fleet, "n01"), node(&fleet, "n04"));
        let state = fleet.product_of(g).state("Replica").unwrap();
        let mut placement = meridian_model::Placement::empty(&fleet);
        let first = fleet.group(g).partition_slot(0);
        placement.slots[first].node = from.0;
        placement.slots[first].state = state;
        let mut world = World::new(&fleet, &placement);
        let part = world.parts.id(g, 0);
        let copy = Action::Replicate {
            source: from,
            target: to,
            state,
            bytes: 1e9,
            rate: 10.0,
            loads: Vec::new(),
        };
        let drop = Action::Drop {
            node: from,
            from: state,
        };
        let plan = Plan {
            start: 0.0,
            end: 100.0,
            steps: vec![
                step(0, g, (0.0, 100.0), copy),
                step(1, g, (100.0, 100.0), drop),
            ],
            blocked: Vec::new(),
            bound: MakespanBound {
                seconds: 100.0,
                bottleneck: String::new(),
            },
            bytes: 1e9,
        };
        let network = Network::new(&fleet);
        let ctx = Context {
            fleet: &fleet,
            network: &network,
            resources: Resources::new(&fleet),
            down: &vec![false; fleet.topology.nodes.len()],
        };
        let mut run = PlanRun::new(0, plan, &ctx, &world);
        assert_eq!(run.start_due(0.0, &ctx, &mut world).copies_started, 1);
        // The copy was slowed and has not landed at its planned end: the drop must wait.
        run.start_due(100.0, &ctx, &mut world);
        assert!(
            world.held_at(part, from).is_some(),
            "the drop overtook its copy"
        );
        assert_eq!(run.pending(), 1);
        // The copy lands (the new replica serves); now the drop may go.
        let landed = world.advance(1e6);
        assert_eq!(landed.len(), 1);
        run.ended(0);
        run.start_due(160.0, &ctx, &mut world);
        assert!(world.held_at(part, from).is_none());
        assert_eq!(run.pending(), 0);
    }
}

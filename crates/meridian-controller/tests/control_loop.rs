//! The control loop end to end against in-process agents: place a new fleet, repair a dead
//! node, drain a rack, and finish a plan after a leader change without running anything twice.

mod common;

use std::time::Duration;

use common::*;
use meridian_controller::ops::NodeChange;
use meridian_controller::records::PlanStatus;
use meridian_store::memory::MemoryStore;
use meridian_store::Store;

const NODES: [&str; 6] = ["n1", "n2", "n3", "n4", "n5", "n6"];

async fn rounds(
    controller: &meridian_controller::Controller,
    agents: &mut [SimAgent],
    alive: impl Fn(&str) -> bool,
    until: impl Fn(&[SimAgent]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for agent in agents.iter_mut().filter(|a| alive(&a.node)) {
            agent.sync(controller);
        }
        assert_one_leader(agents);
        if until(agents) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no convergence: {:?}\nevents: {:#?}\nplans: {:#?}",
            placement(agents),
            controller.events(),
            controller.plans()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_a_new_fleet_then_repairs_a_dead_node() {
    let store = MemoryStore::new();
    let controller = leading(&store, "c1").await;
    controller.put_spec(FLEET).await.expect("spec");
    let mut agents: Vec<SimAgent> = NODES.iter().map(|n| SimAgent::new(n)).collect();
    rounds(
        &controller,
        &mut agents,
        |_| true,
        |a| converged(a, rack_of),
    )
    .await;
    // n1 crashes: its replicas are gone and its agent stops syncing.
    assert!(!agents[0].replicas.is_empty(), "n1 got replicas to lose");
    agents[0].replicas.clear();
    rounds(
        &controller,
        &mut agents,
        |n| n != "n1",
        |a| converged(&a[1..], rack_of),
    )
    .await;
    assert_nothing_ran_twice(&agents);
    let plans = controller.plans();
    assert!(
        plans.iter().any(|p| p.reason.contains("nodes down: n1")),
        "{plans:#?}"
    );
    assert!(
        plans.iter().all(|p| p.status != PlanStatus::Failed),
        "{plans:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_a_node_moves_everything_off_it_and_keeps_spread() {
    let store = MemoryStore::new();
    let controller = leading(&store, "c1").await;
    controller.put_spec(FLEET).await.expect("spec");
    let mut agents: Vec<SimAgent> = NODES.iter().map(|n| SimAgent::new(n)).collect();
    rounds(
        &controller,
        &mut agents,
        |_| true,
        |a| converged(a, rack_of),
    )
    .await;
    let before = agents[0].replicas.len();
    assert!(before > 0, "n1 has replicas to drain");
    controller
        .change_nodes("n1", NodeChange::Drain)
        .await
        .expect("drain");
    rounds(
        &controller,
        &mut agents,
        |_| true,
        |a| a[0].replicas.is_empty() && converged(a, rack_of),
    )
    .await;
    assert_nothing_ran_twice(&agents);
    let drain_plan = controller
        .plans()
        .into_iter()
        .find(|p| p.reason.contains("draining: n1"))
        .expect("a drain plan");
    // Make-before-break: every stop on n1 comes after the copy that replaces it.
    let first_stop = drain_plan
        .steps
        .iter()
        .position(|s| {
            s.commands
                .iter()
                .any(|c| c.node == "n1" && matches!(c.action, meridian_wire::Action::Stop { .. }))
        })
        .expect("a stop on n1");
    let first_copy = drain_plan
        .steps
        .iter()
        .position(|s| {
            s.commands
                .iter()
                .any(|c| matches!(c.action, meridian_wire::Action::Replicate { .. }))
        })
        .expect("a copy");
    assert!(first_copy < first_stop, "{drain_plan:#?}");

    // Hand-offs: every promotion after a demotion was given what the demoted leader reported.
    let mut handed_off = 0;
    for step in &drain_plan.steps {
        let demoted = step
            .commands
            .iter()
            .find(|c| matches!(c.action, meridian_wire::Action::Demote { .. }));
        let promoted = step
            .commands
            .iter()
            .position(|c| matches!(c.action, meridian_wire::Action::Promote { .. }));
        let (Some(demoted), Some(p)) = (demoted, promoted) else {
            continue;
        };
        let id = drain_plan.transition_id(step.id, p);
        let given = agents
            .iter()
            .flat_map(|a| &a.promoted)
            .find(|(promoted, _)| *promoted == id)
            .map(|(_, handoff)| handoff.clone());
        assert_eq!(given, Some(demoted.handoff.clone()), "{id}");
        assert!(demoted.handoff.is_some(), "{id}: {demoted:?}");
        handed_off += 1;
    }
    assert!(handed_off > 0, "the drain moved a leader: {drain_plan:#?}");

    // Followers are told where their partition's leader now serves.
    for agent in agents.iter_mut() {
        agent.sync(&controller);
    }
    let leaders: std::collections::BTreeMap<_, _> = agents
        .iter()
        .flat_map(|a| {
            a.replicas
                .iter()
                .filter(|(_, (_, state))| state == "Leader")
                .map(|(replica, _)| (replica.clone(), a.node.clone()))
        })
        .collect();
    let mut followers = 0;
    for agent in &agents {
        for (replica, (_, state)) in &agent.replicas {
            if state != "Leader" {
                assert_eq!(
                    agent.following.get(replica),
                    leaders.get(replica),
                    "{} follows the leader of {replica}",
                    agent.node
                );
                followers += 1;
            }
        }
    }
    assert!(followers > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_finishes_the_plan_and_the_old_epoch_is_refused() {
    let store = MemoryStore::new();
    let (first, first_task) = leading_with_task(&store, "c1").await;
    let second =
        meridian_controller::Controller::new(config("c2"), std::sync::Arc::new(store.clone()));
    tokio::spawn(second.clone().run(std::future::pending()));
    first.put_spec(FLEET).await.expect("spec");
    let mut agents: Vec<SimAgent> = NODES.iter().map(|n| SimAgent::new(n)).collect();
    // Run the first plan part way: sync until some but not all of it is done.
    rounds(
        &first,
        &mut agents,
        |_| true,
        |a| a.iter().map(|x| x.replicas.len()).sum::<usize>() >= 4,
    )
    .await;
    let old_epoch = first.leading_epoch().expect("leads");
    // The first leader dies and its lease ends; the second takes over.
    let plan = first.plans().into_iter().next().expect("a plan");
    assert!(
        plan.steps_done() < plan.steps.len(),
        "the plan is still running"
    );
    first_task.abort();
    store
        .commit(meridian_store::Txn::default().delete("/meridian/election"))
        .await
        .expect("expire the lease");
    wait_for("the second controller to lead", || {
        second.leading_epoch().is_some()
    })
    .await;
    let new_epoch = second.leading_epoch().expect("leads");
    assert!(new_epoch > old_epoch);
    // Had the old leader survived, its writes would be fenced off.
    assert!(matches!(
        first.put_spec(FLEET).await,
        Err(meridian_controller::ops::OpError::NotLeader(_))
    ));
    rounds(&second, &mut agents, |_| true, |a| converged(a, rack_of)).await;
    assert_nothing_ran_twice(&agents);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while second
        .plan(plan.id)
        .is_none_or(|p| p.status != PlanStatus::Done)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new leader did not finish the first plan: {:#?}\n{:#?}",
            second.plan(plan.id),
            second.events()
        );
        for agent in agents.iter_mut() {
            agent.sync(&second);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A command stamped with the old epoch is refused by an agent that has seen the new one.
    assert!(agents.iter().all(|a| a.epoch_seen == new_epoch));
}

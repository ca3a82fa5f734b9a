//! `meridian status`: what the control plane is doing, for an operator at a terminal — who
//! leads, which nodes are alive, and each running plan's steps with the bytes its copies
//! have moved and how far they trail their sources.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde_json::Value;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// A controller's API base URL (any controller: a follower names the leader).
    #[arg(
        long,
        env = "MERIDIAN_CONTROLLER",
        default_value = "http://127.0.0.1:7000"
    )]
    pub controller: String,
    /// A bearer token with the read role.
    #[arg(long, env = "MERIDIAN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Also list finished plans (the most recent, up to this many).
    #[arg(long, default_value_t = 0)]
    pub history: usize,
}

pub fn run(args: StatusArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let text = runtime.block_on(status(&args))?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    async fn get(&self, path: &str) -> Result<Value> {
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("GET {url}: {status}: {body}");
        }
        Ok(body)
    }
}

async fn status(args: &StatusArgs) -> Result<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("http client")?;
    let mut client = Client {
        base: args.controller.clone(),
        token: args.token.clone(),
        http,
    };
    let mut status = client.get("/v1/status").await?;
    if status["leading"] != true {
        // Ask the leader instead, if this controller knows it.
        let leader = status["leader"]["api_url"]
            .as_str()
            .ok_or_else(|| anyhow!("{} does not lead and knows no leader", client.base))?;
        client.base = leader.to_string();
        status = client.get("/v1/status").await?;
    }
    let nodes = client.get("/v1/nodes").await?;
    let plans = client.get("/v1/plans").await?;
    let mut details = Vec::new();
    let listed = plans["plans"].as_array().cloned().unwrap_or_default();
    let active: Vec<&Value> = listed.iter().filter(|p| is_active(p)).collect();
    let mut finished: Vec<&Value> = listed.iter().filter(|p| !is_active(p)).collect();
    finished.sort_by_key(|p| std::cmp::Reverse(p["id"].as_u64()));
    finished.truncate(args.history);
    for plan in active.iter().chain(finished.iter()) {
        let id = plan["id"].as_u64().unwrap_or(0);
        details.push(client.get(&format!("/v1/plans/{id}")).await?);
    }
    Ok(render(&status, &nodes, &details))
}

fn is_active(plan: &Value) -> bool {
    !matches!(
        plan["status"].as_str(),
        Some("done" | "failed" | "cancelled" | "superseded")
    )
}

/// The report, from the API's answers.
pub fn render(status: &Value, nodes: &Value, plans: &[Value]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "leader {} at epoch {}, spec revision {}\n",
        status["id"].as_str().unwrap_or("?"),
        status["epoch"],
        status["spec_revision"]
    ));
    let nodes = nodes["nodes"].as_array().cloned().unwrap_or_default();
    let mut by_liveness: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for node in &nodes {
        let liveness = node["liveness"].as_str().unwrap_or("unknown").to_string();
        by_liveness
            .entry(liveness)
            .or_default()
            .push(node["name"].as_str().unwrap_or("?").to_string());
    }
    let summary: Vec<String> = by_liveness
        .iter()
        .map(|(liveness, names)| {
            if liveness == "alive" {
                format!("{} alive", names.len())
            } else {
                format!("{} {liveness} ({})", names.len(), names.join(", "))
            }
        })
        .collect();
    out.push_str(&format!("nodes: {}\n", summary.join(", ")));
    if plans.is_empty() {
        out.push_str("no plan running\n");
    }
    for plan in plans {
        let steps = plan["steps"].as_array().cloned().unwrap_or_default();
        let done = steps.iter().filter(|s| step_done(s)).count();
        out.push_str(&format!(
            "plan {} ({}): {}/{} steps — {}\n",
            plan["id"],
            plan["status"].as_str().unwrap_or("?"),
            done,
            steps.len(),
            plan["reason"].as_str().unwrap_or("")
        ));
        for step in steps.iter().filter(|s| !step_done(s)) {
            out.push_str(&format!("  {}\n", step_line(step)));
        }
    }
    out
}

fn step_done(step: &Value) -> bool {
    step["commands"]
        .as_array()
        .is_some_and(|c| c.iter().all(|c| c["status"]["status"] == "done"))
}

/// `copy orders/3 n1 → n4 at 120 MB/s: running, 1.20 of 2.10 GB (57%), 3.4 MB behind`.
fn step_line(step: &Value) -> String {
    let mut line = step["description"].as_str().unwrap_or("?").to_string();
    for command in step["commands"].as_array().into_iter().flatten() {
        let status = &command["status"];
        let state = status["status"].as_str().unwrap_or("?");
        let mut part = format!(
            "{} on {}: {state}",
            action_of(command),
            command["node"].as_str().unwrap_or("?")
        );
        if state == "running" {
            let done = status["bytes_done"].as_u64().unwrap_or(0);
            let total = command["action"]["bytes"].as_u64().unwrap_or(0);
            if total > 0 {
                let percent = (done as f64 / total as f64 * 100.0).min(100.0);
                part.push_str(&format!(
                    ", {:.2} of {:.2} GB ({percent:.0}%)",
                    done as f64 / 1e9,
                    total as f64 / 1e9
                ));
            } else if done > 0 {
                part.push_str(&format!(", {:.2} GB", done as f64 / 1e9));
            }
            if let Some(lag) = status["lag_bytes"].as_u64() {
                part.push_str(&format!(", {:.1} MB behind", lag as f64 / 1e6));
            }
        }
        if let Some(error) = status["error"].as_str() {
            part.push_str(&format!(": {error}"));
        }
        line.push_str(&format!("\n    {part}"));
    }
    line
}

fn action_of(command: &Value) -> &str {
    command["action"]["kind"].as_str().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn running_copies_show_bytes_and_lag() {
        let status = json!({"id": "c1", "epoch": 42, "spec_revision": 7, "leading": true});
        let nodes = json!({"nodes": [
            {"name": "n1", "liveness": "alive"},
            {"name": "n2", "liveness": "alive"},
            {"name": "n3", "liveness": "dead"},
        ]});
        let plan = json!({
            "id": 9, "status": "running", "reason": "draining: n1",
            "steps": [
                {"description": "copy orders/3 n1 → n2 at 120 MB/s", "commands": [
                    {"node": "n2", "action": {"kind": "replicate", "bytes": 2_100_000_000u64},
                     "status": {"status": "running", "bytes_done": 1_200_000_000u64, "lag_bytes": 3_400_000u64}}
                ]},
                {"description": "stop orders/3 on n1", "commands": [
                    {"node": "n1", "action": {"kind": "stop"}, "status": {"status": "done"}}
                ]}
            ]
        });
        let text = render(&status, &nodes, &[plan]);
        assert!(text.contains("leader c1 at epoch 42"), "{text}");
        assert!(text.contains("nodes: 2 alive, 1 dead (n3)"), "{text}");
        assert!(
            text.contains("plan 9 (running): 1/2 steps — draining: n1"),
            "{text}"
        );
        assert!(
            text.contains("replicate on n2: running, 1.20 of 2.10 GB (57%), 3.4 MB behind"),
            "{text}"
        );
        assert!(
            !text.contains("stop orders/3"),
            "finished steps are not listed: {text}"
        );
    }
}

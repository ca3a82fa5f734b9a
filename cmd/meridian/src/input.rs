//! Reading user files into model values, turning problems into readable errors.

use anyhow::{anyhow, Context, Result};

use meridian_model::placement::{PlacementDoc, ResolvedDoc};
use meridian_model::Fleet;

pub fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read `{path}`"))
}

pub fn fleet(path: &str) -> Result<Fleet> {
    let text = read(path)?;
    Fleet::from_yaml(&text, path)
        .map_err(|problems| anyhow!("{path} is not a valid fleet\n{problems}"))
}

pub fn placement(fleet: &Fleet, path: &str) -> Result<ResolvedDoc> {
    let text = read(path)?;
    let doc = PlacementDoc::from_json(&text, path).map_err(|problems| anyhow!("{problems}"))?;
    doc.resolve(fleet, path)
        .map_err(|problems| anyhow!("{problems}"))
}

/// Parses `group/partition[/replica]`.
pub fn replica_ref(text: &str) -> Result<(String, u32, usize)> {
    let parts: Vec<&str> = text.split('/').collect();
    let bad =
        || anyhow!("replica `{text}` must be written GROUP/PARTITION or GROUP/PARTITION/REPLICA");
    match parts.as_slice() {
        [group, partition] => Ok((group.to_string(), partition.parse().map_err(|_| bad())?, 0)),
        [group, partition, index] => Ok((
            group.to_string(),
            partition.parse().map_err(|_| bad())?,
            index.parse().map_err(|_| bad())?,
        )),
        _ => Err(bad()),
    }
}

//! Nodes in preference order with a fast "first node from here on that is not full".
//!
//! A skewed placement fills its preferred nodes first, so after a while most draws land on
//! full nodes. Skipping them one by one would make placement quadratic; instead each list
//! keeps forward pointers past full nodes, compressed as they are followed (as in a
//! union-find), so every full node is stepped over a bounded number of times. Nodes only ever
//! become full, never open again, which is what makes the pointers stay valid.

use meridian_model::ids::NodeId;

pub struct OpenList {
    nodes: Vec<NodeId>,
    /// `next[i]`: no open node lies in `i..next[i]` except possibly `i` itself.
    next: Vec<u32>,
}

impl OpenList {
    pub fn new(nodes: Vec<NodeId>) -> OpenList {
        let next = (0..=nodes.len() as u32).collect();
        OpenList { nodes, next }
    }

    pub fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    /// Index of the first node at or after `from` whose `full` flag is clear.
    pub fn next_open(&mut self, from: usize, full: &[bool]) -> Option<usize> {
        let end = self.nodes.len();
        let mut found = from.min(end);
        while found < end && full[self.nodes[found].index()] {
            found = (self.next[found] as usize).max(found + 1);
        }
        let mut cursor = from.min(end);
        while cursor < found {
            let step = (self.next[cursor] as usize).max(cursor + 1);
            self.next[cursor] = found as u32;
            cursor = step;
        }
        (found < end).then_some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_full_nodes_and_stays_right_as_more_fill_up() {
        let mut list = OpenList::new((0..6).map(NodeId).collect());
        let mut full = vec![false; 6];
        assert_eq!(list.next_open(0, &full), Some(0));
        full[0] = true;
        full[1] = true;
        full[3] = true;
        assert_eq!(list.next_open(0, &full), Some(2));
        assert_eq!(list.next_open(3, &full), Some(4));
        full[2] = true;
        full[4] = true;
        assert_eq!(list.next_open(0, &full), Some(5));
        assert_eq!(list.next_open(1, &full), Some(5));
        full[5] = true;
        assert_eq!(list.next_open(0, &full), None);
        assert_eq!(list.next_open(9, &full), None);
    }
}

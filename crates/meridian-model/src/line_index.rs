//! Maps document paths (`groups[3].heat.Leader`) to the 1-based line where that value starts.
//! A value under a mapping key is located at its key's line (`heat:` rather than the line of
//! the first state under it): that is the line a reader looks for a field on.
//!
//! serde deserializes into plain values and forgets where they came from; semantic validation
//! happens after that. This index, built once from the YAML event stream, lets every later
//! check name the line of the field it complains about.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

#[derive(Debug, Default, Clone)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
    /// Where and why this strict YAML 1.2 parser gave up, if it did. The deserializer is more
    /// lenient (e.g. about indentation inside flow collections), so a document it reads may
    /// have paths past this point that the index cannot locate.
    pub stopped: Option<(usize, String)>,
}

/// Where the parser is inside one collection.
enum Frame {
    Mapping {
        path: String,
        expecting_key: bool,
        key: Option<String>,
        key_line: usize,
    },
    Sequence {
        path: String,
        next_index: usize,
    },
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl LineIndex {
    /// Builds the index. Text that does not parse yields a partial index: syntax errors are
    /// reported by the deserializer, with their own location.
    pub fn build(text: &str) -> Self {
        let mut index = LineIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let (event, span) = match item {
                Ok(parsed) => parsed,
                Err(error) => {
                    index.stopped = Some((error.marker().line(), error.info().to_string()));
                    break;
                }
            };
            let line = span.start.line();
            match event {
                Event::Scalar(value, style, ..) => {
                    // A plain `~`, `null` or empty key is the null key; the document reader
                    // names it `null`.
                    let is_null = style == ScalarStyle::Plain
                        && matches!(value.as_ref(), "" | "~" | "null" | "Null" | "NULL");
                    let text = if is_null { "null" } else { value.as_ref() };
                    if let Some((path, line)) = index.value_path(&mut stack, Some(text), line) {
                        index.lines.entry(path).or_insert(line);
                    }
                }
                Event::Alias(_) => {
                    if let Some((path, line)) = index.value_path(&mut stack, None, line) {
                        index.lines.entry(path).or_insert(line);
                    }
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let (path, line) = index.value_path(&mut stack, None, line).unwrap_or_default();
                    index.lines.entry(path.clone()).or_insert(line);
                    stack.push(match event {
                        Event::MappingStart(..) => Frame::Mapping {
                            path,
                            expecting_key: true,
                            key: None,
                            key_line: 0,
                        },
                        _ => Frame::Sequence {
                            path,
                            next_index: 0,
                        },
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        index
    }

    /// Advances the innermost frame by one node, starting on `line`, and returns the path of
    /// that node and the line to report it at, if it is a value (not a mapping key). `scalar`
    /// is the node's text when it is a scalar.
    fn value_path(
        &mut self,
        stack: &mut [Frame],
        scalar: Option<&str>,
        line: usize,
    ) -> Option<(String, usize)> {
        let Some(frame) = stack.last_mut() else {
            return Some((String::new(), line));
        };
        match frame {
            Frame::Mapping {
                path,
                expecting_key,
                key,
                key_line,
            } => {
                if *expecting_key {
                    *expecting_key = false;
                    *key = Some(scalar.unwrap_or("?").to_string());
                    *key_line = line;
                    None
                } else {
                    *expecting_key = true;
                    let key = key.take().unwrap_or_default();
                    Some((child_path(path, &key), *key_line))
                }
            }
            Frame::Sequence { path, next_index } => {
                let item = format!("{path}[{next_index}]");
                *next_index += 1;
                Some((item, line))
            }
        }
    }

    /// The line of `path`, or of its nearest ancestor that is in the document.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut candidate = path;
        loop {
            if let Some(line) = self.lines.get(candidate) {
                return Some(*line);
            }
            let cut = candidate.rfind(['.', '['])?;
            candidate = &candidate[..cut];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
name: demo
groups:
  - name: a
    heat:
      Leader: { cpu: 2 }
  - name: b
    spread: rack
list: [1, 2]
";

    #[test]
    fn finds_lines_of_nested_values() {
        let index = LineIndex::build(DOC);
        assert_eq!(index.line_of("name"), Some(1));
        assert_eq!(index.line_of("groups"), Some(2));
        assert_eq!(index.line_of("groups[0]"), Some(3));
        assert_eq!(index.line_of("groups[0].heat"), Some(4));
        assert_eq!(index.line_of("groups[0].heat.Leader.cpu"), Some(5));
        assert_eq!(index.line_of("groups[1].spread"), Some(7));
        assert_eq!(index.line_of("list[1]"), Some(8));
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        let index = LineIndex::build(DOC);
        assert_eq!(index.line_of("groups[1].regions[0]"), Some(6));
        assert_eq!(index.line_of("nowhere"), None);
    }

    #[test]
    fn survives_broken_yaml() {
        let index = LineIndex::build("a: [1, 2\nb: {");
        assert_eq!(index.line_of("b"), None);
    }
}

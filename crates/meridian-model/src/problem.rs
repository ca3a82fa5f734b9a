//! Problems found in user input, each naming where it is (file, line, path) and why.
//!
//! Validation never stops at the first problem: it collects every one it can find, so a user
//! fixes a fleet file in one pass instead of one error per run.

use std::fmt;

/// One thing wrong with an input, located as precisely as we can.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The input's name as the user gave it (usually a file path).
    pub file: String,
    /// 1-based line of the offending value, when the input text is known.
    pub line: Option<usize>,
    /// Path to the offending field inside the document, e.g. `groups[2].spread`.
    pub path: String,
    /// What is wrong, in words that suggest the fix.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in one input. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        writeln!(f, "{count} problem{}:", if count == 1 { "" } else { "s" })?;
        for problem in &self.0 {
            writeln!(f, "  {problem}")?;
        }
        Ok(())
    }
}

/// Collects problems while a document is checked; resolves paths to lines at the end.
///
/// A problem reported twice (same path, same message) is kept once: a shared definition such
/// as a node class is checked once per node that uses it, and one mistake should read as one.
pub struct ProblemSink<'a> {
    file: String,
    index: &'a crate::line_index::LineIndex,
    problems: Vec<Problem>,
    seen: std::collections::HashSet<(String, String)>,
    /// Every report, repeats included: callers compare counts to learn whether a step failed.
    reports: usize,
}

impl<'a> ProblemSink<'a> {
    pub fn new(file: &str, index: &'a crate::line_index::LineIndex) -> Self {
        Self {
            file: file.to_string(),
            index,
            problems: Vec::new(),
            seen: std::collections::HashSet::new(),
            reports: 0,
        }
    }

    fn push(&mut self, problem: Problem) {
        self.reports += 1;
        if self
            .seen
            .insert((problem.path.clone(), problem.message.clone()))
        {
            self.problems.push(problem);
        }
    }

    /// Records a problem at `path` (a document path such as `groups[0].heat.Leader.cpu`).
    pub fn report(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let line = self.index.line_of(&path);
        self.push(Problem {
            file: self.file.clone(),
            line,
            path,
            message: message.into(),
        });
    }

    /// Records a problem whose line is already known (e.g. from the YAML parser).
    pub fn report_at_line(&mut self, line: Option<usize>, path: String, message: String) {
        self.push(Problem {
            file: self.file.clone(),
            line,
            path,
            message,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn count(&self) -> usize {
        self.reports
    }

    /// Ends collection: `Ok(value)` if nothing was reported.
    pub fn finish<T>(self, value: T) -> Result<T, Problems> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(Problems(self.problems))
        }
    }

    /// Ends collection. When some problem inside the document could not be given a line
    /// because the line index stopped early, says where and why, so the user can fix that
    /// first and get every line back.
    pub fn into_problems(mut self) -> Problems {
        let unlocated = self
            .problems
            .iter()
            .any(|p| p.line.is_none() && !p.path.is_empty() && !p.path.starts_with('('));
        if let (true, Some((line, reason))) = (unlocated, &self.index.stopped) {
            let message = format!(
                "problems after this line cannot be given line numbers: {reason} (the file is read leniently, but this is not strict YAML; fix it to get every line)"
            );
            let line = Some((*line).max(1));
            self.problems.push(Problem {
                file: self.file.clone(),
                line,
                path: String::new(),
                message,
            });
        }
        Problems(self.problems)
    }
}

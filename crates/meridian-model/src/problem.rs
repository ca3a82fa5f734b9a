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
pub struct ProblemSink<'a> {
    file: String,
    index: &'a crate::line_index::LineIndex,
    problems: Vec<Problem>,
}

impl<'a> ProblemSink<'a> {
    pub fn new(file: &str, index: &'a crate::line_index::LineIndex) -> Self {
        Self {
            file: file.to_string(),
            index,
            problems: Vec::new(),
        }
    }

    /// Records a problem at `path` (a document path such as `groups[0].heat.Leader.cpu`).
    pub fn report(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let line = self.index.line_of(&path);
        self.problems.push(Problem {
            file: self.file.clone(),
            line,
            path,
            message: message.into(),
        });
    }

    /// Records a problem whose line is already known (e.g. from the YAML parser).
    pub fn report_at_line(&mut self, line: Option<usize>, path: String, message: String) {
        self.problems.push(Problem {
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
        self.problems.len()
    }

    /// Ends collection: `Ok(value)` if nothing was reported.
    pub fn finish<T>(self, value: T) -> Result<T, Problems> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(Problems(self.problems))
        }
    }

    pub fn into_problems(self) -> Problems {
        Problems(self.problems)
    }
}

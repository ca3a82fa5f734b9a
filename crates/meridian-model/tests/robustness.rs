//! `Fleet::from_yaml` never panics, whatever it is given, and every problem it reports says
//! something and points inside the file.
//!
//! Inputs: arbitrary strings, YAML-looking noise, and examples/small.yaml damaged the way
//! people damage files: a line deleted or duplicated or re-indented, two characters swapped, a
//! number replaced by -1 or a word, a character inserted.

use meridian_model::{Fleet, Problem};
use proptest::prelude::*;

const SMALL: &str = include_str!("../../../examples/small.yaml");

/// One way of damaging a document; positions are taken modulo the document's size.
#[derive(Debug, Clone)]
enum Damage {
    DeleteLine(usize),
    DuplicateLine(usize),
    Reindent(usize, usize),
    SwapCharacters(usize),
    ReplaceNumber(usize, &'static str),
    Insert(usize, char),
}

const REPLACEMENTS: [&str; 10] = [
    "-1",
    "word",
    "null",
    "~",
    "[]",
    "{}",
    "1e999",
    ".nan",
    "4294967296",
    "\"7\"",
];
const INSERTS: [char; 10] = [':', '-', '[', '{', '#', '\'', '"', ' ', '\n', '\t'];

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<usize>().prop_map(Damage::DeleteLine),
        any::<usize>().prop_map(Damage::DuplicateLine),
        (any::<usize>(), 0..8usize).prop_map(|(line, indent)| Damage::Reindent(line, indent)),
        any::<usize>().prop_map(Damage::SwapCharacters),
        (any::<usize>(), 0..REPLACEMENTS.len())
            .prop_map(|(at, word)| Damage::ReplaceNumber(at, REPLACEMENTS[word])),
        (any::<usize>(), 0..INSERTS.len()).prop_map(|(at, c)| Damage::Insert(at, INSERTS[c])),
    ]
}

fn apply(text: &str, damage: &Damage) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let count = lines.len().max(1);
    let mut chars: Vec<char> = text.chars().collect();
    match *damage {
        Damage::DeleteLine(at) if !lines.is_empty() => {
            lines.remove(at % count);
        }
        Damage::DuplicateLine(at) if !lines.is_empty() => {
            let line = lines[at % count].clone();
            lines.insert(at % count, line);
        }
        Damage::Reindent(at, indent) if !lines.is_empty() => {
            let line = lines[at % count].trim_start().to_string();
            lines[at % count] = format!("{}{line}", " ".repeat(indent));
        }
        Damage::SwapCharacters(at) if chars.len() > 1 => {
            let at = at % (chars.len() - 1);
            chars.swap(at, at + 1);
            return chars.into_iter().collect();
        }
        Damage::ReplaceNumber(at, word) => return replace_number(text, at, word),
        Damage::Insert(at, c) => {
            chars.insert(at % (chars.len() + 1), c);
            return chars.into_iter().collect();
        }
        _ => {}
    }
    lines.join("\n") + "\n"
}

/// Byte ranges of the runs of digits in `text`.
fn number_runs(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push(s..text.len());
    }
    runs
}

/// Replaces the `at`-th run of digits (modulo how many there are) with `word`.
fn replace_number(text: &str, at: usize, word: &str) -> String {
    let runs = number_runs(text);
    if runs.is_empty() {
        return text.to_string();
    }
    let run = runs[at % runs.len()].clone();
    format!("{}{word}{}", &text[..run.start], &text[run.end..])
}

/// What every answer must satisfy: problems say something, a line, when given, is in the
/// file, and a problem inside the document has a line, unless the file says why it cannot
/// (YAML that the reader accepts leniently but the strict line indexer does not).
fn check_answer(text: &str) -> Result<(), TestCaseError> {
    let Err(problems) = Fleet::from_yaml(text, "fleet.yaml") else {
        return Ok(());
    };
    prop_assert!(!problems.0.is_empty(), "an error with no problems");
    let lines = text.lines().count().max(1);
    // Lines may be missing where the reader and the strict line indexer disagree: the file
    // then says so, or (an edge of YAML we accept) it uses anchors, aliases or tags on keys
    // that the two parsers read differently (`&0:` is a mapping to one, a scalar to the other).
    let explained = problems
        .0
        .iter()
        .any(|p| p.message.contains("cannot be given line numbers"))
        || text.contains(['&', '*', '!']);
    for problem in &problems.0 {
        check_problem(problem, lines, explained)?;
    }
    Ok(())
}

fn check_problem(
    problem: &Problem,
    lines: usize,
    unlocated_explained: bool,
) -> Result<(), TestCaseError> {
    prop_assert!(
        !problem.message.trim().is_empty(),
        "empty message: {problem:?}"
    );
    prop_assert_eq!(&problem.file, "fleet.yaml");
    if let Some(line) = problem.line {
        prop_assert!(
            (1..=lines + 1).contains(&line),
            "line {line} outside a file of {lines} lines: {problem}"
        );
    }
    let names_the_document = !problem.path.is_empty() && !problem.path.starts_with('(');
    if names_the_document && !unlocated_explained {
        prop_assert!(
            problem.line.is_some(),
            "no line for a problem inside the document: {problem}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn damaged_small_example_never_panics(damages in prop::collection::vec(damage(), 1..4)) {
        let mut text = SMALL.to_string();
        for damage in &damages {
            text = apply(&text, damage);
        }
        check_answer(&text)?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check_answer(&text)?;
    }

    #[test]
    fn yaml_like_noise_never_panics(text in "[a-z0-9_:\\-\\[\\]{},.#&*!|>'\" \n]{0,200}") {
        check_answer(&text)?;
    }
}

#[test]
fn small_example_survives_every_single_line_deletion() {
    for at in 0..SMALL.lines().count() {
        let text = apply(SMALL, &Damage::DeleteLine(at));
        check_answer(&text).unwrap_or_else(|e| panic!("line {} deleted: {e}", at + 1));
    }
}

#[test]
fn small_example_survives_every_number_replaced() {
    for at in 0..number_runs(SMALL).len() {
        for word in REPLACEMENTS {
            let text = replace_number(SMALL, at, word);
            check_answer(&text).unwrap_or_else(|e| panic!("number {at} replaced by {word}: {e}"));
        }
    }
}

//! The report every stage gives of a bad input: `path[:line]: message`, one line each, so that
//! `check` can list them all and one bad file or row never hides the rest.

use std::path::PathBuf;

/// A problem found in a file, with the line where it is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct Problem {
    /// The file the problem is in.
    pub path: PathBuf,
    /// 1-based line, where known.
    pub line: Option<u64>,
    /// What is wrong and, where useful, what is expected.
    pub message: String,
}

impl Problem {
    /// A problem at `path`, optionally at `line`.
    pub fn new(path: impl Into<PathBuf>, line: Option<u64>, message: impl Into<String>) -> Self {
        // One line per problem, whatever the message quotes (a CSV value, a file's text).
        let message: String = message
            .into()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Problem {
            path: path.into(),
            line,
            message,
        }
    }
}

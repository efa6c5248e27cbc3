// SPDX-License-Identifier: MIT OR Apache-2.0
//! Labels files, as `nvinfer` and TAO write them: one class name a line (line N names class N),
//! or all names on a single line separated by `;`. The one reader of them, for the model's
//! labels (`labels-file`) and the detector's (`class-labels-file`).

use std::path::{Path, PathBuf};

/// A labels file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("labels file {path:?}: {source}")]
pub struct LabelsFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The class names in a labels file's text, class 0 first. Names are trimmed; a blank line
/// before a later name leaves its class unnamed (`""`), blank lines at the end name nothing.
/// A single non-blank line containing `;` is the one-line form.
pub fn parse_labels_text(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut named = lines.iter().filter(|l| !l.is_empty());
    if let (Some(only), None) = (named.next(), named.next())
        && only.contains(';')
    {
        return only.split(';').map(|l| l.trim().to_string()).collect();
    }
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    lines[..end].iter().map(|l| l.to_string()).collect()
}

/// Reads a labels file (see [`parse_labels_text`]). An empty file gives no names; whether
/// that is an error is the caller's to say.
pub fn read_labels_file(path: &Path) -> Result<Vec<String>, LabelsFileError> {
    std::fs::read_to_string(path)
        .map(|t| parse_labels_text(&t))
        .map_err(|source| LabelsFileError {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_a_line() {
        assert_eq!(
            parse_labels_text("normal\r\narmed \n\n fighting\n\n\n"),
            ["normal", "armed", "", "fighting"]
        );
        assert_eq!(parse_labels_text("only\n"), ["only"]);
    }

    #[test]
    fn one_line_of_semicolons() {
        assert_eq!(
            parse_labels_text("normal; armed ;fighting\n"),
            ["normal", "armed", "fighting"]
        );
        // An empty entry leaves its class unnamed; blank lines around the line do not count.
        assert_eq!(parse_labels_text("\na;;c\n\n"), ["a", "", "c"]);
        // Two lines: each is one name, `;` and all.
        assert_eq!(parse_labels_text("a;b\nc\n"), ["a;b", "c"]);
    }

    #[test]
    fn empty_text_names_nothing() {
        assert!(parse_labels_text("").is_empty());
        assert!(parse_labels_text("\n \n\n").is_empty());
    }

    #[test]
    fn files_are_read_and_errors_name_the_path() {
        let dir = std::env::temp_dir().join(format!("iguard-labels-mod-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("labels.txt");
        std::fs::write(&path, "car\nperson\n").unwrap();
        assert_eq!(read_labels_file(&path).unwrap(), ["car", "person"]);
        let missing = dir.join("none.txt");
        let e = read_labels_file(&missing).unwrap_err();
        assert_eq!(e.path, missing);
        assert!(e.to_string().contains("none.txt"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

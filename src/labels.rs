// SPDX-License-Identifier: MIT OR Apache-2.0
//! Class labels from the user: labels files, as `nvinfer` and TAO write them (one class name a
//! line, line N naming class N, or all names on a single line separated by `;`), and
//! `id=label` pair lists (`"1=person,2=weapon"`). The one reader of each, for the model's labels
//! (`labels-file`), the detector's (`class-labels`, `class-labels-file`) and the replayed
//! detections' (`iguardreplay class-labels`).

use std::collections::BTreeMap;
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

/// What is wrong with an `id=label` list; each caller words it for its property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairError {
    /// An entry without `=`.
    NotAPair {
        entry: String,
    },
    /// An entry whose id is not an integer.
    BadId {
        entry: String,
        id: String,
    },
    EmptyLabel {
        id: i32,
    },
    /// A label with `=` in it: a wrong separator, as in `1=person;2=weapon`.
    EqualsInLabel {
        entry: String,
        id: i32,
        label: String,
    },
    Duplicate {
        id: i32,
        first: String,
        second: String,
    },
}

/// Parses `"1=person, 2=weapon"`: entries separated by `,`, ids in any order, spaces around ids
/// and labels ignored, empty entries (a trailing comma) skipped; an empty list maps nothing.
pub fn parse_id_labels(s: &str) -> Result<BTreeMap<i32, String>, PairError> {
    let mut map = BTreeMap::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((id, label)) = entry.split_once('=') else {
            return Err(PairError::NotAPair {
                entry: entry.to_string(),
            });
        };
        let (id, label) = (id.trim(), label.trim());
        let id: i32 = id.parse().map_err(|_| PairError::BadId {
            entry: entry.to_string(),
            id: id.to_string(),
        })?;
        if label.is_empty() {
            return Err(PairError::EmptyLabel { id });
        }
        if label.contains('=') {
            return Err(PairError::EqualsInLabel {
                entry: entry.to_string(),
                id,
                label: label.to_string(),
            });
        }
        if let Some(first) = map.insert(id, label.to_string()) {
            return Err(PairError::Duplicate {
                id,
                first,
                second: label.to_string(),
            });
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_label_pairs() {
        let m = parse_id_labels(" 3 = knife , 0=car,").unwrap();
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            [(0, "car".to_string()), (3, "knife".to_string())]
        );
        assert_eq!(parse_id_labels("-1=x").unwrap()[&-1], "x");
        assert!(parse_id_labels("").unwrap().is_empty());
        assert!(parse_id_labels(" , ").unwrap().is_empty());
    }

    #[test]
    fn bad_pairs_say_which_entry() {
        let e = |s: &str| parse_id_labels(s).unwrap_err();
        assert_eq!(
            e("1=person,weapon"),
            PairError::NotAPair {
                entry: "weapon".into()
            }
        );
        assert_eq!(
            e("x = person"),
            PairError::BadId {
                entry: "x = person".into(),
                id: "x".into()
            }
        );
        assert_eq!(
            e("99999999999=a"),
            PairError::BadId {
                entry: "99999999999=a".into(),
                id: "99999999999".into()
            }
        );
        assert_eq!(e("2= "), PairError::EmptyLabel { id: 2 });
        assert_eq!(
            e("1=person;2=weapon"),
            PairError::EqualsInLabel {
                entry: "1=person;2=weapon".into(),
                id: 1,
                label: "person;2=weapon".into()
            }
        );
        assert_eq!(
            e("1=a, 1=b"),
            PairError::Duplicate {
                id: 1,
                first: "a".into(),
                second: "b".into()
            }
        );
    }

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

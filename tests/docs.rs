// SPDX-License-Identifier: MIT OR Apache-2.0
//! Keeps the reference in `docs/` from drifting away from the code (issue 23).
//!
//! - Every property an element defines itself (not those of `GstElement`, `GstObject` or
//!   `GstBaseTransform`: `name`, `parent`, `qos`) has one row in its element's table in
//!   `docs/properties.md`, `| `name` | type | default | description |`, whose type and default
//!   are those the element registers, rendered as the top of that page explains. An enum's
//!   description names each of its values. A row for a property the element does not have
//!   fails too.
//! - Every relative link in `README.md` and `docs/*.md` points at a file that exists, and its
//!   `#anchor`, for a Markdown file, at one of that file's headings (GitHub's rule: lower case,
//!   punctuation dropped, spaces to hyphens, `-1`, `-2` for repeats).
//! - Every page of `docs/` is linked from the README and opens, under its title, with a
//!   paragraph saying what it covers.
//!
//! A missing row is reported with a row to paste (the blurb as its description, to be made
//! readable). The plugin is registered statically, as in the element tests.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use gst::glib;
use gst::prelude::*;

/// Each element and the page whose section of its name (`## `element``) holds its table.
const ELEMENTS: &[(&str, &str)] = &[
    ("iguardverify", "docs/properties.md"),
    ("iguardreplay", "docs/properties.md"),
    ("iguardpublish", "docs/properties.md"),
    ("iguardoverlay", "docs/properties.md"),
];

/// The header every property table has.
const TABLE_HEADER: &str = "| property | type | default | description |";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// What the code says

/// `min–max`, `≥ min`, `≤ max` or nothing, for a range against its type's own limits.
fn range<T: PartialEq + std::fmt::Display>(min: T, max: T, type_min: T, type_max: T) -> String {
    match (min == type_min, max == type_max) {
        (true, true) => String::new(),
        (false, true) => format!(" ≥ {min}"),
        // A signed type's lowest value is no useful lower bound; an unsigned type's 0 is.
        (true, false) if type_min.to_string().starts_with('-') => format!(" ≤ {max}"),
        _ => format!(" {min}–{max}"),
    }
}

/// The type cell: the value type, its range and how the property may be set.
fn type_cell(p: &glib::ParamSpec) -> String {
    let t = p.value_type();
    let mut cell = if let Some(s) = p.downcast_ref::<glib::ParamSpecUInt>() {
        format!(
            "uint{}",
            range(s.minimum(), s.maximum(), u32::MIN, u32::MAX)
        )
    } else if let Some(s) = p.downcast_ref::<glib::ParamSpecInt>() {
        format!("int{}", range(s.minimum(), s.maximum(), i32::MIN, i32::MAX))
    } else if let Some(s) = p.downcast_ref::<glib::ParamSpecUInt64>() {
        format!(
            "uint64{}",
            range(s.minimum(), s.maximum(), u64::MIN, u64::MAX)
        )
    } else if let Some(s) = p.downcast_ref::<glib::ParamSpecInt64>() {
        format!(
            "int64{}",
            range(s.minimum(), s.maximum(), i64::MIN, i64::MAX)
        )
    } else if let Some(s) = p.downcast_ref::<glib::ParamSpecFloat>() {
        format!(
            "float{}",
            range(s.minimum(), s.maximum(), -f32::MAX, f32::MAX)
        )
    } else if let Some(s) = p.downcast_ref::<glib::ParamSpecDouble>() {
        format!(
            "double{}",
            range(s.minimum(), s.maximum(), -f64::MAX, f64::MAX)
        )
    } else if t == glib::Type::STRING {
        "string".to_string()
    } else if t == glib::Type::BOOL {
        "boolean".to_string()
    } else if t.is_a(glib::Type::ENUM) {
        format!("enum {}", t.name())
    } else if t.is_a(glib::Type::FLAGS) {
        format!("flags {}", t.name())
    } else {
        t.name().to_string()
    };
    let flags = p.flags();
    if !flags.contains(glib::ParamFlags::WRITABLE) {
        cell.push_str(", read-only");
    } else {
        if !flags.contains(glib::ParamFlags::READABLE) {
            cell.push_str(", write-only");
        }
        if flags.contains(gst::PARAM_FLAG_MUTABLE_PLAYING) {
            cell.push_str(", playing");
        } else if !flags.contains(gst::PARAM_FLAG_MUTABLE_READY) {
            cell.push_str(", null");
        }
    }
    cell
}

/// The default cell: strings quoted (`(none)` for NULL), enums by nick, numbers as Rust
/// prints them.
fn default_cell(p: &glib::ParamSpec) -> String {
    let v = p.default_value();
    let t = v.type_();
    if t == glib::Type::STRING {
        return match v.get::<Option<String>>().expect("a string") {
            Some(s) => format!("\"{s}\""),
            None => "(none)".to_string(),
        };
    }
    if t.is_a(glib::Type::ENUM) {
        let (_, e) = glib::EnumValue::from_value(v).expect("an enum value");
        return e.nick().to_string();
    }
    macro_rules! as_number {
        ($($ty:ty),*) => {$(
            if let Ok(n) = v.get::<$ty>() {
                return n.to_string();
            }
        )*};
    }
    as_number!(bool, u32, i32, u64, i64, f32, f64);
    // Boxed and object properties: no default but NULL.
    "(none)".to_string()
}

/// The enum's value nicks, which its description must name.
fn enum_nicks(p: &glib::ParamSpec) -> Vec<String> {
    p.downcast_ref::<glib::ParamSpecEnum>()
        .map(|e| {
            e.enum_class()
                .values()
                .iter()
                .map(|v| v.nick().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The properties the element defines itself, by name.
fn own_properties(factory: &str) -> BTreeMap<String, glib::ParamSpec> {
    let element = gst::ElementFactory::make(factory)
        .build()
        .unwrap_or_else(|e| panic!("cannot make {factory}: {e}"));
    let own = element.type_();
    element
        .list_properties()
        .iter()
        .filter(|p| p.owner_type() == own)
        .map(|p| (p.name().to_string(), p.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// What the docs say

/// The lines of a Markdown text outside fenced code blocks, with their numbers (from 1).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// The cells of a table row, split on `|` not escaped as `\|`, trimmed.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut escaped = false;
    for c in inner.chars() {
        match c {
            '|' if !escaped => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
        escaped = c == '\\';
    }
    out.iter().map(|c| c.trim().to_string()).collect()
}

struct Row {
    line: usize,
    name: String,
    type_: String,
    default: String,
    description: String,
}

/// The property rows of each `## ` section of a page, by the section's title.
fn property_tables(page: &str) -> BTreeMap<String, Vec<Row>> {
    let text = read(page);
    let mut tables: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut section = String::new();
    let mut in_table = false;
    for (n, line) in prose_lines(&text) {
        if let Some(title) = line.strip_prefix("## ") {
            section = title.trim().to_string();
        }
        if line.trim() == TABLE_HEADER {
            in_table = true;
            tables.entry(section.clone()).or_default();
            continue;
        }
        if !line.trim_start().starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table || cells(line).iter().all(|c| c.starts_with("---")) {
            continue;
        }
        let c = cells(line);
        assert!(
            c.len() == 4,
            "{page}:{n}: a property row has 4 cells (name, type, default, description), \
             this one {}: {line}",
            c.len()
        );
        let name = c[0].trim_matches('`').to_string();
        assert!(
            c[0] == format!("`{name}`"),
            "{page}:{n}: a property row names one property, in backticks: {}",
            c[0]
        );
        tables.entry(section.clone()).or_default().push(Row {
            line: n,
            name,
            type_: c[1].clone(),
            default: c[2].clone(),
            description: c[3].clone(),
        });
    }
    tables
}

#[test]
fn every_property_is_documented_with_its_type_and_default_and_no_row_is_stale() {
    common::init();
    let mut problems = String::new();
    for &(factory, page) in ELEMENTS {
        let props = own_properties(factory);
        assert!(!props.is_empty(), "{factory} has no properties of its own?");
        let tables = property_tables(page);
        let section = format!("`{factory}`");
        let Some(rows) = tables.get(&section) else {
            writeln!(
                problems,
                "{factory}: {page} has no section `## {section}` with a table headed \
                 {TABLE_HEADER}"
            )
            .unwrap();
            continue;
        };
        let mut seen = BTreeSet::new();
        for row in rows {
            let at = format!("{page}:{}", row.line);
            if !seen.insert(row.name.clone()) {
                writeln!(
                    problems,
                    "{factory}: property `{}` has a second row ({at})",
                    row.name
                )
                .unwrap();
                continue;
            }
            let Some(p) = props.get(&row.name) else {
                writeln!(
                    problems,
                    "{factory}: {at} documents property `{}`, which the element does not have \
                     (a stale row: remove it, or fix its name)",
                    row.name
                )
                .unwrap();
                continue;
            };
            let (want_type, want_default) = (type_cell(p), default_cell(p));
            if row.type_ != want_type {
                writeln!(
                    problems,
                    "{factory}: property `{}`: {at} gives the type `{}`, the element has `{}`",
                    row.name, row.type_, want_type
                )
                .unwrap();
            }
            if row.default != want_default {
                writeln!(
                    problems,
                    "{factory}: property `{}`: {at} gives the default `{}`, the element has `{}`",
                    row.name, row.default, want_default
                )
                .unwrap();
            }
            for nick in enum_nicks(p) {
                if !row.description.contains(&format!("`{nick}`")) {
                    writeln!(
                        problems,
                        "{factory}: property `{}`: {at}: the description does not name the \
                         value `{nick}` (in backticks)",
                        row.name
                    )
                    .unwrap();
                }
            }
        }
        for (name, p) in &props {
            if !seen.contains(name) {
                writeln!(
                    problems,
                    "{factory}: property `{name}` has no row in {page} (section {section}); \
                     one to start from:\n    | `{name}` | {} | {} | {} |",
                    type_cell(p),
                    default_cell(p),
                    p.blurb().unwrap_or("")
                )
                .unwrap();
            }
        }
    }
    // A property table under any other heading would be checked against nothing.
    let pages: BTreeSet<&str> = ELEMENTS.iter().map(|&(_, page)| page).collect();
    for page in pages {
        for section in property_tables(page).keys() {
            let named = ELEMENTS
                .iter()
                .any(|&(f, p)| p == page && *section == format!("`{f}`"));
            if !named {
                writeln!(
                    problems,
                    "{page}: a property table under `## {section}`, which is no element's \
                     section (`## `iguardverify`` and so on), so nothing checks it"
                )
                .unwrap();
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the property reference has drifted:\n{problems}"
    );
}

// ---------------------------------------------------------------------------------------------
// Links

/// The README and every page of `docs/`, relative to the repository root.
fn pages() -> Vec<String> {
    let mut pages: Vec<String> = fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    pages.sort();
    pages.insert(0, "README.md".to_string());
    pages
}

/// GitHub's anchor for a heading's text.
fn slug(title: &str) -> String {
    title
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a Markdown file's headings give.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of the inline links and images of a line (`[text](target)`), code spans left
/// out.
fn link_targets(line: &str) -> Vec<String> {
    // Drop code spans first: `a](b)` inside backticks is not a link.
    let mut prose = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            prose.push(c);
        }
    }
    let mut out = Vec::new();
    let mut rest = prose.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].split_whitespace().next().unwrap_or("");
        out.push(target.to_string());
        rest = &after[end..];
    }
    out
}

#[test]
fn every_relative_link_in_the_readme_and_docs_points_at_something_that_exists() {
    let mut problems = String::new();
    let mut anchor_cache: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    for page in pages() {
        let text = read(&page);
        let dir = Path::new(&page)
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        for (n, line) in prose_lines(&text) {
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, anchor) = match target.split_once('#') {
                    Some((p, a)) => (p, Some(a)),
                    None => (target.as_str(), None),
                };
                let file = if path.is_empty() {
                    PathBuf::from(&page)
                } else {
                    dir.join(path)
                };
                let full = root().join(&file);
                if !full.exists() {
                    writeln!(
                        problems,
                        "{page}:{n}: the link `{target}` points at {}, which does not exist",
                        file.display()
                    )
                    .unwrap();
                    continue;
                }
                let Some(anchor) = anchor else { continue };
                if full.extension().is_none_or(|x| x != "md") {
                    continue;
                }
                let known = anchor_cache
                    .entry(full.clone())
                    .or_insert_with(|| anchors(&fs::read_to_string(&full).unwrap_or_default()));
                if !known.contains(anchor) {
                    writeln!(
                        problems,
                        "{page}:{n}: the link `{target}`: {} has no heading with the anchor \
                         `#{anchor}`",
                        file.display()
                    )
                    .unwrap();
                }
            }
        }
    }
    assert!(problems.is_empty(), "broken links:\n{problems}");
}

#[test]
fn every_docs_page_is_linked_from_the_readme_and_says_what_it_covers() {
    let readme = read("README.md");
    let linked: BTreeSet<String> = prose_lines(&readme)
        .iter()
        .flat_map(|(_, l)| link_targets(l))
        .map(|t| t.split('#').next().unwrap_or("").to_string())
        .collect();
    let mut problems = String::new();
    for page in pages().into_iter().skip(1) {
        if !linked.contains(&page) {
            writeln!(problems, "README.md does not link to {page}").unwrap();
        }
        let text = read(&page);
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let title = lines.next().unwrap_or("");
        let first = lines.next().unwrap_or("");
        if !title.starts_with("# ") {
            writeln!(problems, "{page} does not start with a `# ` title: {title}").unwrap();
        }
        let starts_paragraph = first
            .chars()
            .next()
            .is_some_and(|c| !matches!(c, '#' | '|' | '-' | '*' | '`' | '<' | '!' | '>'));
        if !starts_paragraph {
            writeln!(
                problems,
                "{page}: under its title comes `{first}`, not a paragraph saying what the page \
                 covers"
            )
            .unwrap();
        }
    }
    assert!(problems.is_empty(), "{problems}");
}

#[test]
fn the_renderings_follow_the_rules_at_the_top_of_properties_md() {
    // The examples docs/properties.md gives for the type and default columns.
    assert_eq!(range(1u32, 1024, u32::MIN, u32::MAX), " 1–1024");
    assert_eq!(range(0u32, 2, u32::MIN, u32::MAX), " 0–2");
    assert_eq!(range(10u32, u32::MAX, u32::MIN, u32::MAX), " ≥ 10");
    assert_eq!(range(i64::MIN, i64::MAX, i64::MIN, i64::MAX), "");
    assert_eq!(range(0.0f64, 3600.0, -f64::MAX, f64::MAX), " 0–3600");
    assert_eq!(
        slug("`iguardpublish`: the event log and MQTT"),
        "iguardpublish-the-event-log-and-mqtt"
    );
    assert_eq!(
        link_targets("see [a](docs/a.md#x) and `[b](c)` and ![i](p.png \"t\")"),
        ["docs/a.md#x", "p.png"]
    );
    assert_eq!(cells("| `a` | b \\| c | d |"), ["`a`", "b \\| c", "d"]);
}

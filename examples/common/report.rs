// SPDX-License-Identifier: MIT OR Apache-2.0
//! Number and JSON formatting shared by the benchmark programs (`#[path]`-included by each;
//! a file in a subfolder of `examples/` is not an example of its own).

use std::fmt::Write as _;

/// A figure for people: whole numbers as such, one decimal from 100 up, else three.
pub fn show(v: f64) -> String {
    if !v.is_finite() {
        "nan".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `v` as a JSON number, `null` when it is not finite.
pub fn json_num(v: f64) -> String {
    if v.is_finite() {
        show(v)
    } else {
        "null".into()
    }
}

// SPDX-License-Identifier: MIT OR Apache-2.0
//! Recorded detections in the MOTChallenge layout, and the `class-labels` map.
//!
//! One detection a line, comma-separated:
//! `frame, id, left, top, width, height, conf[, class[, extra columns ignored]]`.
//! Frames are 1-based, `id` is negative for untracked detections, `class` defaults to 1 when the
//! column is missing or negative (MOT17 `det.txt` files carry -1 there). Blank lines and lines starting with `#` are skipped; whitespace
//! around fields is allowed. Nothing here knows about GStreamer.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::geometry::pixel_span;

/// Class id used when a line has no `class` column.
pub const DEFAULT_CLASS_ID: i32 = 1;

/// The columns a line must have (`class` is optional).
const MIN_FIELDS: usize = 7;

const FIELD_NAMES: [&str; 8] = [
    "frame", "id", "left", "top", "width", "height", "conf", "class",
];

/// One recorded detection, in frame pixels as recorded (not clamped).
#[derive(Debug, Clone, PartialEq)]
pub struct MotDetection {
    /// The tracker's id; `None` for untracked detections (a negative id in the file).
    pub object_id: Option<i32>,
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
    pub confidence: f64,
    pub class_id: i32,
}

/// A box in whole pixels, inside the frame it was clamped to and never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl MotDetection {
    /// The box clamped to a `frame_width`×`frame_height` frame and rounded outwards, by the
    /// rule the element's sampler uses ([`pixel_span`]); `None` when nothing of it is left
    /// inside.
    pub fn pixel_box(&self, frame_width: u32, frame_height: u32) -> Option<PixelBox> {
        let (x0, x1) = pixel_span(self.left, self.left + self.width, frame_width)?;
        let (y0, y1) = pixel_span(self.top, self.top + self.height, frame_height)?;
        Some(PixelBox {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        })
    }
}

/// All detections of a file, indexed by frame number (1-based).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Detections {
    by_frame: BTreeMap<u64, Vec<MotDetection>>,
    count: usize,
}

impl Detections {
    /// The detections recorded for `frame`, in file order; empty when there are none.
    pub fn frame(&self, frame: u64) -> &[MotDetection] {
        self.by_frame.get(&frame).map(Vec::as_slice).unwrap_or(&[])
    }

    /// How many detections the file holds.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many distinct frames have at least one detection.
    pub fn frame_count(&self) -> usize {
        self.by_frame.len()
    }

    /// The first and last frame with detections.
    pub fn frame_range(&self) -> Option<(u64, u64)> {
        let first = self.by_frame.keys().next()?;
        let last = self.by_frame.keys().next_back()?;
        Some((*first, *last))
    }

    fn push(&mut self, frame: u64, detection: MotDetection) {
        self.by_frame.entry(frame).or_default().push(detection);
        self.count += 1;
    }
}

/// Why a detections file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("cannot read detections file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Line {
        path: PathBuf,
        /// 1-based.
        line: usize,
        message: String,
    },
}

/// Reads and parses a whole detections file.
pub fn parse_file(path: &Path) -> Result<Detections, ParseError> {
    let text = std::fs::read_to_string(path).map_err(|source| ParseError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&text, path)
}

/// Parses detections from `text`; `path` only names the origin in error messages.
pub fn parse_str(text: &str, path: &Path) -> Result<Detections, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut detections = Detections::default();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (frame, detection) = parse_line(line).map_err(|message| ParseError::Line {
            path: path.to_path_buf(),
            line: index + 1,
            message,
        })?;
        detections.push(frame, detection);
    }
    Ok(detections)
}

fn parse_line(line: &str) -> Result<(u64, MotDetection), String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() < MIN_FIELDS {
        return Err(format!(
            "expected at least {MIN_FIELDS} comma-separated fields \
             (frame, id, left, top, width, height, conf[, class]), found {}",
            fields.len()
        ));
    }

    let frame = integer(&fields, 0)?;
    if frame < 1 {
        return Err(field_error(
            &fields,
            0,
            "must be 1 or more (MOT frames are 1-based)",
        ));
    }
    let id = integer(&fields, 1)?;
    let left = number(&fields, 2)?;
    let top = number(&fields, 3)?;
    let width = number(&fields, 4)?;
    if width < 0.0 {
        return Err(field_error(&fields, 4, "must not be negative"));
    }
    let height = number(&fields, 5)?;
    if height < 0.0 {
        return Err(field_error(&fields, 5, "must not be negative"));
    }
    let confidence = number(&fields, 6)?;
    // MOTChallenge detection files (det.txt) put -1 where ground-truth files have the class:
    // a negative class means "not given", like a missing column.
    let class_id = match fields.len() > 7 {
        true => Some(integer(&fields, 7)?).filter(|c| *c >= 0),
        false => None,
    }
    .unwrap_or(DEFAULT_CLASS_ID as i64);

    let object_id = if id < 0 {
        None
    } else {
        Some(i32::try_from(id).map_err(|_| field_error(&fields, 1, "is out of range"))?)
    };
    let class_id =
        i32::try_from(class_id).map_err(|_| field_error(&fields, 7, "is out of range"))?;

    Ok((
        frame as u64,
        MotDetection {
            object_id,
            left,
            top,
            width,
            height,
            confidence,
            class_id,
        },
    ))
}

fn field_error(fields: &[&str], index: usize, what: &str) -> String {
    format!(
        "field {} ({}) {:?} {what}",
        index + 1,
        FIELD_NAMES[index],
        fields[index]
    )
}

/// A finite number.
fn number(fields: &[&str], index: usize) -> Result<f64, String> {
    let v: f64 = fields[index]
        .parse()
        .map_err(|_| field_error(fields, index, "is not a number"))?;
    if !v.is_finite() {
        return Err(field_error(fields, index, "is not a finite number"));
    }
    Ok(v)
}

/// A whole number; `5.0` is accepted since some tools write every column as a float.
fn integer(fields: &[&str], index: usize) -> Result<i64, String> {
    if let Ok(v) = fields[index].parse::<i64>() {
        return Ok(v);
    }
    let v = number(fields, index)?;
    if v.fract() != 0.0 || v < i64::MIN as f64 || v > i64::MAX as f64 {
        return Err(field_error(fields, index, "is not a whole number"));
    }
    Ok(v as i64)
}

/// Maps MOT class ids to the labels written as the ROI type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassLabels {
    map: BTreeMap<i32, String>,
}

/// A `class-labels` value that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid class-labels {value:?}: {message} (expected comma-separated id=label pairs, e.g. \"1=person,2=weapon\")"
)]
pub struct ClassLabelsError {
    pub value: String,
    pub message: String,
}

impl ClassLabels {
    /// Parses `"1=person, 2=weapon"`. Whitespace around ids and labels is ignored, as are empty
    /// entries (a trailing comma); an empty value maps nothing.
    pub fn parse(value: &str) -> Result<Self, ClassLabelsError> {
        use crate::labels::PairError;
        let message = |e: PairError| match e {
            PairError::NotAPair { entry } => format!("{entry:?} has no '='"),
            PairError::BadId { entry, id } => {
                format!("class id {id:?} in {entry:?} is not an integer")
            }
            PairError::EmptyLabel { id } => format!("class {id} has an empty label"),
            // Catches a wrong separator such as "1=person;2=weapon".
            PairError::EqualsInLabel { id, label, .. } => {
                format!("label {label:?} of class {id} contains '='")
            }
            PairError::Duplicate { id, .. } => format!("class {id} is mapped twice"),
        };
        crate::labels::parse_id_labels(value)
            .map(|map| ClassLabels { map })
            .map_err(|e| ClassLabelsError {
                value: value.to_string(),
                message: message(e),
            })
    }

    /// The label of `class_id`: the mapped one, or `class-<id>` when it is not mapped.
    pub fn label(&self, class_id: i32) -> Cow<'_, str> {
        match self.map.get(&class_id) {
            Some(label) => Cow::Borrowed(label),
            None => Cow::Owned(format!("class-{class_id}")),
        }
    }
}

impl fmt::Display for ClassLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (id, label)) in self.map.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{id}={label}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Detections, ParseError> {
        parse_str(text, Path::new("dets.txt"))
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_full_and_short_lines() {
        let d = parse(
            "# frame,id,left,top,width,height,conf,class\n\
             \n\
             1, 3, 10.5, 20, 30, 40, 0.9, 2\n\
             1,-1,0,0,5,5,0.5\n\
             \t3 ,7,1,2,3,4,0.25,1,-1,-1,-1\r\n",
        )
        .unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d.frame_count(), 2);
        assert_eq!(d.frame_range(), Some((1, 3)));
        assert_eq!(
            d.frame(1),
            &[
                MotDetection {
                    object_id: Some(3),
                    left: 10.5,
                    top: 20.0,
                    width: 30.0,
                    height: 40.0,
                    confidence: 0.9,
                    class_id: 2,
                },
                MotDetection {
                    object_id: None,
                    left: 0.0,
                    top: 0.0,
                    width: 5.0,
                    height: 5.0,
                    confidence: 0.5,
                    class_id: DEFAULT_CLASS_ID,
                },
            ]
        );
        assert!(d.frame(2).is_empty());
        assert_eq!(d.frame(3)[0].object_id, Some(7));
        assert_eq!(d.frame(3)[0].class_id, 1);
        assert!(d.frame(0).is_empty());
        assert!(d.frame(4).is_empty());
    }

    #[test]
    fn lines_may_come_in_any_frame_order() {
        let d = parse("5,1,0,0,1,1,1\n2,1,0,0,1,1,1\n5,2,0,0,1,1,1\n").unwrap();
        assert_eq!(d.frame(5).len(), 2);
        assert_eq!(d.frame(5)[1].object_id, Some(2));
        assert_eq!(d.frame(2).len(), 1);
        assert_eq!(d.frame_range(), Some((2, 5)));
    }

    #[test]
    fn accepts_whole_floats_and_a_bom() {
        let d = parse("\u{feff}2.0,4.0,1,1,1,1,0.5,2.0\n").unwrap();
        assert_eq!(d.frame(2)[0].object_id, Some(4));
        assert_eq!(d.frame(2)[0].class_id, 2);
    }

    #[test]
    fn an_empty_file_has_no_detections() {
        let d = parse("# nothing\n\n").unwrap();
        assert!(d.is_empty());
        assert_eq!(d.frame_range(), None);
    }

    #[test]
    fn too_few_fields() {
        let e = error_of("1,1,0,0,1,1,1\n\n2,1,0,0,1,1\n");
        assert!(e.starts_with("dets.txt:3: "), "{e}");
        assert!(e.contains("found 6"), "{e}");
    }

    #[test]
    fn not_a_number() {
        let e = error_of("# header\n1,1,abc,0,1,1,1\n");
        assert!(e.starts_with("dets.txt:2: "), "{e}");
        assert!(e.contains("field 3 (left) \"abc\" is not a number"), "{e}");
    }

    #[test]
    fn nan_and_infinity() {
        let e = error_of("1,1,0,0,1,1,NaN\n");
        assert!(e.starts_with("dets.txt:1: "), "{e}");
        assert!(e.contains("(conf) \"NaN\" is not a finite number"), "{e}");
        let e = error_of("1,1,0,0,1,1,1\n1,1,0,inf,1,1,1\n");
        assert!(e.starts_with("dets.txt:2: "), "{e}");
        assert!(e.contains("(top) \"inf\""), "{e}");
    }

    #[test]
    fn zero_or_negative_frame() {
        let e = error_of("0,1,0,0,1,1,1\n");
        assert!(e.starts_with("dets.txt:1: "), "{e}");
        assert!(e.contains("field 1 (frame) \"0\" must be 1 or more"), "{e}");
        let e = error_of("\n-3,1,0,0,1,1,1\n");
        assert!(e.starts_with("dets.txt:2: "), "{e}");
        assert!(e.contains("\"-3\""), "{e}");
    }

    #[test]
    fn fractional_frame_id_or_class() {
        let e = error_of("1.5,1,0,0,1,1,1\n");
        assert!(e.contains("(frame) \"1.5\" is not a whole number"), "{e}");
        let e = error_of("1,2.5,0,0,1,1,1\n");
        assert!(e.contains("(id) \"2.5\""), "{e}");
        let e = error_of("1,1,0,0,1,1,1,x\n");
        assert!(e.contains("field 8 (class) \"x\" is not a number"), "{e}");
    }

    #[test]
    fn negative_size() {
        let e = error_of("1,1,0,0,-1,1,1\n");
        assert!(e.contains("(width) \"-1\" must not be negative"), "{e}");
        let e = error_of("1,1,0,0,1,-2,1\n");
        assert!(e.contains("(height) \"-2\" must not be negative"), "{e}");
    }

    #[test]
    fn out_of_range_ids() {
        let e = error_of("1,3000000000,0,0,1,1,1\n");
        assert!(e.contains("(id) \"3000000000\" is out of range"), "{e}");
        let e = error_of("1,1,0,0,1,1,1,3000000000\n");
        assert!(e.contains("(class) \"3000000000\" is out of range"), "{e}");
    }

    #[test]
    fn mot17_det_files_carry_minus_one_as_class() {
        // frame, id, left, top, width, height, conf, x, y, z
        let d = parse("1,-1,1359.1,413.3,120.3,362.2,2.3,-1,-1,-1\n").unwrap();
        assert_eq!(d.frame(1)[0].class_id, DEFAULT_CLASS_ID);
        assert_eq!(d.frame(1)[0].object_id, None);
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let e = parse_file(Path::new("/nonexistent/dets.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/dets.txt"), "{e}");
    }

    fn det(left: f64, top: f64, width: f64, height: f64) -> MotDetection {
        MotDetection {
            object_id: None,
            left,
            top,
            width,
            height,
            confidence: 1.0,
            class_id: 1,
        }
    }

    #[test]
    fn pixel_boxes_are_rounded_and_clamped() {
        let px = |x, y, width, height| {
            Some(PixelBox {
                x,
                y,
                width,
                height,
            })
        };
        assert_eq!(
            det(10.0, 20.0, 30.0, 40.0).pixel_box(320, 240),
            px(10, 20, 30, 40)
        );
        assert_eq!(
            det(10.4, 19.6, 30.2, 40.0).pixel_box(320, 240),
            px(10, 19, 31, 41)
        );
        assert_eq!(
            det(-10.0, -5.0, 50.0, 20.0).pixel_box(320, 240),
            px(0, 0, 40, 15)
        );
        assert_eq!(
            det(300.0, 200.0, 50.0, 60.0).pixel_box(320, 240),
            px(300, 200, 20, 40)
        );
        assert_eq!(det(400.0, 10.0, 10.0, 10.0).pixel_box(320, 240), None);
        assert_eq!(det(-50.0, 10.0, 40.0, 10.0).pixel_box(320, 240), None);
        assert_eq!(det(10.0, 10.0, 0.0, 10.0).pixel_box(320, 240), None);
        // A sliver still covers the pixel it is in.
        assert_eq!(
            det(10.0, 10.0, 0.3, 10.0).pixel_box(320, 240),
            px(10, 10, 1, 10)
        );
        assert_eq!(det(10.0, 10.0, 10.0, 10.0).pixel_box(0, 0), None);
    }

    /// The replayed box and the box the element crops for the same detection are the same
    /// pixels: one rounding rule for both.
    #[test]
    fn replayed_boxes_round_like_the_sampler() {
        use crate::geometry::{PixelRect, Rect};
        // Quarter pixels, exact in f32 and f64, around and across the edges of a 64×48 frame.
        let values: Vec<f64> = (-12..=280).step_by(7).map(|q| q as f64 / 4.0).collect();
        let sizes: Vec<f64> = (1..=120).step_by(9).map(|q| q as f64 / 4.0).collect();
        let mut compared = 0;
        for &left in &values {
            for &width in &sizes {
                let (top, height) = (left / 2.0 - 3.0, width + 0.5);
                let replayed = det(left, top, width, height).pixel_box(64, 48);
                let rect = Rect {
                    x: left as f32,
                    y: top as f32,
                    width: width as f32,
                    height: height as f32,
                };
                let sampled = rect.to_pixels(64, 48);
                let replayed = replayed.map(|b| PixelRect {
                    x: b.x,
                    y: b.y,
                    width: b.width,
                    height: b.height,
                });
                assert_eq!(replayed, sampled, "{left}, {top}, {width}x{height}");
                compared += usize::from(sampled.is_some());
            }
        }
        assert!(compared > 100, "only {compared} boxes inside the frame");
    }

    #[test]
    fn class_labels() {
        let l = ClassLabels::parse("1=person,2=weapon").unwrap();
        assert_eq!(l.label(1), "person");
        assert_eq!(l.label(2), "weapon");
        assert_eq!(l.label(7), "class-7");
        assert_eq!(l.label(-1), "class--1");
        assert_eq!(l.to_string(), "1=person,2=weapon");

        let l = ClassLabels::parse(" 3 = knife , 0=car,").unwrap();
        assert_eq!(l.label(3), "knife");
        assert_eq!(l.label(0), "car");
        assert_eq!(ClassLabels::parse("").unwrap(), ClassLabels::default());
    }

    #[test]
    fn malformed_class_labels_name_the_value() {
        for (value, what) in [
            ("1=person,weapon", "\"weapon\" has no '='"),
            ("x=person", "class id \"x\""),
            ("1=", "class 1 has an empty label"),
            ("1=a,1=b", "class 1 is mapped twice"),
            (
                "1=person;2=weapon",
                "label \"person;2=weapon\" of class 1 contains '='",
            ),
        ] {
            let e = ClassLabels::parse(value).unwrap_err().to_string();
            assert!(e.contains(&format!("{value:?}")), "{e}");
            assert!(e.contains(what), "{e}");
        }
    }
}

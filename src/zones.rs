// SPDX-License-Identifier: MIT OR Apache-2.0
//! Zones: named polygons over the frame, in normalised coordinates (0–1 of the frame's width
//! and height, so they survive a change of resolution).
//!
//! The text form, as the `zones` property takes it: zones separated by `;`, each a name, `:`,
//! and its corners as `x,y` pairs separated by spaces:
//! `lawn:0,0.55 1,0.55 1,1 0,1; door:0.42,0.2 0.5,0.2 0.5,0.5 0.42,0.5`.
//!
//! A zone holds a point when the point is inside the polygon or on its edge. An object is in a
//! zone when the bottom centre of its box (where it stands) is. This module knows nothing of
//! GStreamer or of the element.

use std::fmt;

/// The most corners a zone may have.
pub const MAX_POINTS: usize = 64;
/// The most zones one property may name.
pub const MAX_ZONES: usize = 64;

/// One named polygon, corners in order (either direction), normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// The zones of one element, in the order given.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Zones {
    zones: Vec<Zone>,
}

/// Whether a zone name is usable in lists (`trigger-zones`), MQTT topics and JSON as it is.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Zone {
    /// Whether `(x, y)` (normalised) is inside the polygon or on its edge.
    pub fn contains(&self, x: f64, y: f64) -> bool {
        if !x.is_finite() || !y.is_finite() {
            return false;
        }
        let n = self.points.len();
        let mut inside = false;
        for i in 0..n {
            let a = self.points[i];
            let b = self.points[(i + 1) % n];
            if on_segment(a, b, (x, y)) {
                return true;
            }
            // Even-odd rule: count the edges a ray to the right of the point crosses.
            if (a.1 > y) != (b.1 > y) {
                let cross_x = a.0 + (y - a.1) * (b.0 - a.0) / (b.1 - a.1);
                if x < cross_x {
                    inside = !inside;
                }
            }
        }
        inside
    }

    fn check(&self) -> Result<(), String> {
        let name = &self.name;
        if self.points.len() < 3 {
            return Err(format!(
                "zone {name:?} has {} corner(s); a zone needs at least 3",
                self.points.len()
            ));
        }
        if self.points.len() > MAX_POINTS {
            return Err(format!(
                "zone {name:?} has {} corners; at most {MAX_POINTS} are allowed",
                self.points.len()
            ));
        }
        for &(x, y) in &self.points {
            if !(0.0..=1.0).contains(&x) || !(0.0..=1.0).contains(&y) {
                return Err(format!(
                    "zone {name:?}: corner {x},{y} is outside the frame (coordinates are 0 to 1)"
                ));
            }
        }
        let n = self.points.len();
        for i in 0..n {
            for j in i + 1..n {
                // Neighbouring edges share a corner; that is not a crossing.
                if j == i + 1 || (i == 0 && j == n - 1) {
                    continue;
                }
                let (a, b) = (self.points[i], self.points[(i + 1) % n]);
                let (c, d) = (self.points[j], self.points[(j + 1) % n]);
                if segments_meet(a, b, c, d) {
                    return Err(format!(
                        "zone {name:?} crosses itself: edge {} and edge {} meet; list the \
                         corners in order around the zone",
                        i + 1,
                        j + 1
                    ));
                }
            }
        }
        if area(&self.points).abs() < 1e-9 {
            return Err(format!(
                "zone {name:?} has no area (its corners are on one line)"
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.name)?;
        for (i, (x, y)) in self.points.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{x},{y}")?;
        }
        Ok(())
    }
}

impl Zones {
    /// Parses the text form; the error names the zone (or its position) and what is wrong.
    pub fn parse(text: &str) -> Result<Zones, String> {
        let mut zones: Vec<Zone> = Vec::new();
        for (index, part) in text.split(';').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, corners) = part.split_once(':').ok_or_else(|| {
                format!(
                    "zone {} ({part:?}) has no name: write it as name:x,y x,y x,y",
                    index + 1
                )
            })?;
            let name = name.trim();
            if !is_valid_name(name) {
                return Err(format!(
                    "zone name {name:?} is not usable: use 1 to 64 letters, digits, '_' or '-'"
                ));
            }
            if zones.iter().any(|z| z.name == name) {
                return Err(format!("zone {name:?} is defined twice"));
            }
            let mut points = Vec::new();
            for corner in corners.split_whitespace() {
                let parsed = corner.split_once(',').and_then(|(x, y)| {
                    Some((x.trim().parse::<f64>().ok()?, y.trim().parse::<f64>().ok()?))
                });
                let p = parsed.ok_or_else(|| {
                    format!("zone {name:?}: corner {corner:?} is not x,y (two numbers)")
                })?;
                points.push(p);
            }
            let zone = Zone {
                name: name.to_string(),
                points,
            };
            zone.check()?;
            zones.push(zone);
        }
        if zones.len() > MAX_ZONES {
            return Err(format!(
                "{} zones given; at most {MAX_ZONES} are allowed",
                zones.len()
            ));
        }
        Ok(Zones { zones })
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Zone> {
        self.zones.iter()
    }

    pub fn get(&self, name: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.name == name)
    }

    /// Checks that every name of a list (`trigger-zones`, `ignore-zones`) is a zone here.
    pub fn check_names<'a>(
        &self,
        property: &str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), String> {
        for name in names {
            if self.get(name).is_none() {
                let known: Vec<&str> = self.zones.iter().map(|z| z.name.as_str()).collect();
                return Err(format!(
                    "{property} names zone {name:?}, which `zones` does not define (zones: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        Ok(())
    }

    /// The zones holding the normalised point, in the order given.
    pub fn holding(&self, x: f64, y: f64) -> impl Iterator<Item = &Zone> {
        self.zones.iter().filter(move |z| z.contains(x, y))
    }
}

impl fmt::Display for Zones {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, z) in self.zones.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{z}")?;
        }
        Ok(())
    }
}

/// Where objects may trigger: the zones of `zones` named by `trigger-zones` (an object must
/// stand in one of them, when any are named) and by `ignore-zones` (it must stand in none).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rule {
    pub zones: Zones,
    trigger: Vec<usize>,
    ignore: Vec<usize>,
}

impl Rule {
    /// The rule of the three properties' values; the error names the zone or the name.
    pub fn parse(zones: &str, trigger: &str, ignore: &str) -> Result<Rule, String> {
        let zones = Zones::parse(zones).map_err(|e| format!("zones: {e}"))?;
        let names = |property: &str, list: &str| -> Result<Vec<usize>, String> {
            let names: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect();
            zones.check_names(property, names.iter().copied())?;
            Ok(names
                .iter()
                .filter_map(|n| zones.zones.iter().position(|z| z.name == *n))
                .collect())
        };
        let trigger = names("trigger-zones", trigger)?;
        let ignore = names("ignore-zones", ignore)?;
        Ok(Rule {
            zones,
            trigger,
            ignore,
        })
    }

    /// Whether an object standing at the normalised point may trigger. With no zones named,
    /// everywhere (a point that cannot be placed, too).
    pub fn allows(&self, point: Option<(f64, f64)>) -> bool {
        if self.trigger.is_empty() && self.ignore.is_empty() {
            return true;
        }
        let Some((x, y)) = point else {
            return false;
        };
        let zone = |i: &usize| self.zones.zones[*i].contains(x, y);
        (self.trigger.is_empty() || self.trigger.iter().any(zone)) && !self.ignore.iter().any(zone)
    }

    /// Indices (in `zones`) of the zones holding the normalised point.
    pub fn holding(&self, point: Option<(f64, f64)>) -> impl Iterator<Item = usize> + '_ {
        self.zones
            .zones
            .iter()
            .enumerate()
            .filter(move |(_, z)| point.is_some_and(|(x, y)| z.contains(x, y)))
            .map(|(i, _)| i)
    }

    /// The name of zone `index`.
    pub fn name(&self, index: usize) -> &str {
        self.zones.zones.get(index).map_or("", |z| z.name.as_str())
    }
}

/// Where an object stands: the bottom centre of its box, normalised by the frame's size.
/// `None` for an empty frame size or a box that is not finite.
pub fn foot_point(
    x: f64,
    y: f64,
    width: f64,
    height: f64,
    frame_width: u32,
    frame_height: u32,
) -> Option<(f64, f64)> {
    if frame_width == 0 || frame_height == 0 {
        return None;
    }
    let fx = (x + width / 2.0) / f64::from(frame_width);
    let fy = (y + height) / f64::from(frame_height);
    (fx.is_finite() && fy.is_finite()).then_some((fx, fy))
}

/// Twice the signed area (shoelace).
fn area(points: &[(f64, f64)]) -> f64 {
    let n = points.len();
    (0..n)
        .map(|i| {
            let (a, b) = (points[i], points[(i + 1) % n]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum()
}

fn orient(a: (f64, f64), b: (f64, f64), c: (f64, f64)) -> f64 {
    (b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0)
}

fn on_segment(a: (f64, f64), b: (f64, f64), p: (f64, f64)) -> bool {
    orient(a, b, p).abs() <= 1e-12
        && p.0 >= a.0.min(b.0) - 1e-12
        && p.0 <= a.0.max(b.0) + 1e-12
        && p.1 >= a.1.min(b.1) - 1e-12
        && p.1 <= a.1.max(b.1) + 1e-12
}

fn segments_meet(a: (f64, f64), b: (f64, f64), c: (f64, f64), d: (f64, f64)) -> bool {
    let (o1, o2) = (orient(a, b, c), orient(a, b, d));
    let (o3, o4) = (orient(c, d, a), orient(c, d, b));
    if ((o1 > 0.0 && o2 < 0.0) || (o1 < 0.0 && o2 > 0.0))
        && ((o3 > 0.0 && o4 < 0.0) || (o3 < 0.0 && o4 > 0.0))
    {
        return true;
    }
    on_segment(a, b, c) || on_segment(a, b, d) || on_segment(c, d, a) || on_segment(c, d, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "lawn:0,0.55 1,0.55 1,1 0,1; door:0.42,0.2 0.5,0.2 0.5,0.5 0.42,0.5";

    #[test]
    fn the_text_form_parses_and_prints_back_to_the_same_zones() {
        let zones = Zones::parse(TWO).unwrap();
        let names: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(names, ["lawn", "door"]);
        assert_eq!(zones.get("door").unwrap().points.len(), 4);
        assert_eq!(Zones::parse(&zones.to_string()).unwrap(), zones);
        assert!(Zones::parse("").unwrap().is_empty());
        assert!(Zones::parse(" ; ").unwrap().is_empty());
    }

    #[test]
    fn a_point_is_in_a_zone_inside_and_on_its_edge_and_not_outside() {
        let zones = Zones::parse(TWO).unwrap();
        let lawn = zones.get("lawn").unwrap();
        assert!(lawn.contains(0.5, 0.8));
        assert!(lawn.contains(0.5, 0.55), "on the top edge");
        assert!(lawn.contains(1.0, 1.0), "a corner");
        assert!(!lawn.contains(0.5, 0.54));
        assert!(!lawn.contains(f64::NAN, 0.8));
        let holding: Vec<&str> = zones.holding(0.45, 0.3).map(|z| z.name.as_str()).collect();
        assert_eq!(holding, ["door"]);
        assert_eq!(zones.holding(0.1, 0.1).count(), 0);
    }

    #[test]
    fn a_concave_zone_leaves_out_its_notch() {
        // A U shape: the notch between the arms is outside.
        let zones = Zones::parse("u:0,0 0.3,0 0.3,0.7 0.7,0.7 0.7,0 1,0 1,1 0,1").unwrap();
        let u = zones.get("u").unwrap();
        assert!(!u.contains(0.5, 0.3), "the notch");
        assert!(u.contains(0.15, 0.3), "the left arm");
        assert!(u.contains(0.85, 0.3), "the right arm");
        assert!(u.contains(0.5, 0.9), "the base");
    }

    #[test]
    fn an_object_stands_at_its_boxs_bottom_centre() {
        let (x, y) = foot_point(100.0, 50.0, 40.0, 100.0, 400, 300).unwrap();
        assert!((x - 0.3).abs() < 1e-12 && (y - 0.5).abs() < 1e-12);
        assert_eq!(foot_point(0.0, 0.0, 1.0, 1.0, 0, 300), None);
        assert_eq!(foot_point(f64::INFINITY, 0.0, 1.0, 1.0, 400, 300), None);
    }

    #[test]
    fn a_malformed_zone_is_refused_with_its_name_and_what_is_wrong() {
        let cases = [
            ("lawn:0,0 1,0", "\"lawn\" has 2 corner(s)"),
            ("lawn:0,0 1.5,0 1,1", "corner 1.5,0 is outside"),
            ("lawn:0,0 x,0 1,1", "corner \"x,0\" is not x,y"),
            ("lawn:0,0 0.5,0.5 1,1", "\"lawn\" has no area"),
            ("bow:0,0 1,1 1,0 0,1", "\"bow\" crosses itself"),
            ("0,0 1,0 1,1", "zone 1 (\"0,0 1,0 1,1\") has no name"),
            ("a b:0,0 1,0 1,1", "zone name \"a b\" is not usable"),
            (
                "a:0,0 1,0 1,1; a:0,0 1,0 0,1",
                "zone \"a\" is defined twice",
            ),
        ];
        for (text, expected) in cases {
            let err = Zones::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let many = (0..=MAX_ZONES)
            .map(|i| format!("z{i}:0,0 1,0 1,1"))
            .collect::<Vec<_>>()
            .join(";");
        assert!(Zones::parse(&many).unwrap_err().contains("at most 64"));
    }

    #[test]
    fn the_rule_lets_objects_trigger_inside_trigger_zones_and_outside_masks() {
        let all = Rule::parse(TWO, "", "").unwrap();
        assert!(
            all.allows(Some((0.1, 0.1))) && all.allows(None),
            "no zones named"
        );
        let lawn = Rule::parse(TWO, "lawn", "").unwrap();
        assert!(lawn.allows(Some((0.5, 0.9))));
        assert!(!lawn.allows(Some((0.5, 0.3))) && !lawn.allows(None));
        let masked = Rule::parse(TWO, "", " door ").unwrap();
        assert!(masked.allows(Some((0.1, 0.1))));
        assert!(!masked.allows(Some((0.45, 0.3))));
        let holding: Vec<&str> = lawn
            .holding(Some((0.45, 0.3)))
            .chain(lawn.holding(Some((0.45, 0.9))))
            .chain(lawn.holding(None))
            .map(|i| lawn.name(i))
            .collect();
        assert_eq!(holding, ["door", "lawn"]);
        let e = Rule::parse(TWO, "lawn,gate", "").unwrap_err();
        assert!(e.contains("trigger-zones names zone \"gate\""), "{e}");
        let e = Rule::parse("lawn:0,0 1,0", "", "").unwrap_err();
        assert!(e.starts_with("zones: ") && e.contains("\"lawn\""), "{e}");
    }

    #[test]
    fn lists_of_zone_names_must_name_defined_zones() {
        let zones = Zones::parse(TWO).unwrap();
        assert!(zones.check_names("trigger-zones", ["lawn"]).is_ok());
        let err = zones
            .check_names("ignore-zones", ["lawn", "gate"])
            .unwrap_err();
        assert!(
            err.contains("ignore-zones names zone \"gate\"") && err.contains("lawn, door"),
            "{err}"
        );
    }
}

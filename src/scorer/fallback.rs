// SPDX-License-Identifier: MIT OR Apache-2.0
//! The label-based fallback: scores a clip from what the first-stage detector saw on its frames.
//!
//! Score = the mean over the clip's tiles of the best weapon-label confidence on that frame
//! (0 on frames without a weapon). A weapon seen on every frame at 0.9 scores 0.9; on half the
//! frames, 0.45. It needs no model and costs microseconds, which makes it the stand-in while a
//! model is missing and a baseline to compare a model against.

use super::{Cancel, Score, ScoreError, Scorer};
use crate::clip::Clip;

#[derive(Debug, Clone)]
pub struct FallbackScorer {
    weapon_labels: Vec<String>,
}

impl FallbackScorer {
    pub fn new(weapon_labels: Vec<String>) -> Self {
        FallbackScorer { weapon_labels }
    }

    fn score_one(&self, clip: &Clip) -> Score {
        if clip.frame_labels.is_empty() {
            return Score {
                score: 0.0,
                label: String::new(),
            };
        }
        // Per weapon label: how much it contributed over the clip.
        let mut totals: Vec<(String, f64)> = Vec::new();
        let mut sum = 0.0;
        for labels in clip.frame_labels.iter() {
            let best = labels
                .iter()
                .filter(|l| self.weapon_labels.iter().any(|w| **w == *l.label))
                .filter(|l| l.confidence.is_finite())
                .max_by(|a, b| a.confidence.total_cmp(&b.confidence));
            if let Some(l) = best {
                let c = l.confidence.clamp(0.0, 1.0);
                sum += c;
                match totals.iter_mut().find(|(name, _)| **name == *l.label) {
                    Some((_, t)) => *t += c,
                    None => totals.push((l.label.to_string(), c)),
                }
            }
        }
        let label = totals
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(l, _)| l)
            .unwrap_or_default();
        Score {
            score: sum / clip.frame_labels.len() as f64,
            label,
        }
    }
}

impl Scorer for FallbackScorer {
    fn name(&self) -> &str {
        "fallback"
    }

    fn is_model(&self) -> bool {
        false
    }

    /// Labels only: the tiles are never read.
    fn needs_pixels(&self) -> bool {
        false
    }

    fn max_batch(&self) -> usize {
        usize::MAX
    }

    fn score(&self, clips: &[&Clip], _cancel: &Cancel) -> Result<Vec<Score>, ScoreError> {
        Ok(clips.iter().map(|c| self.score_one(c)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::LabelSeen;
    use crate::detections::SourceFrame;
    use crate::geometry::PixelRect;

    fn clip(frames: &[&[(&str, f64)]]) -> Clip {
        Clip {
            request_id: 1,
            source: SourceFrame::default(),
            width: 1,
            height: 1,
            frames: frames.len() as u32,
            real_frames: frames.len() as u32,
            pixels: vec![0; frames.len() * 3],
            frame_labels: frames
                .iter()
                .map(|f| {
                    f.iter()
                        .map(|(l, c)| LabelSeen {
                            label: (*l).into(),
                            confidence: *c,
                        })
                        .collect()
                })
                .collect(),
            region: PixelRect::full(1, 1),
            trigger_label: "person".into(),
            trigger_confidence: 1.0,
            start_pts: None,
            end_pts: None,
        }
    }

    fn score(c: &Clip) -> Score {
        let s = FallbackScorer::new(vec!["weapon".into(), "knife".into()]);
        s.score(&[c], &Cancel::new()).unwrap().remove(0)
    }

    #[test]
    fn share_of_frames_weighted_by_confidence() {
        let w: &[(&str, f64)] = &[("person", 0.9), ("weapon", 0.8)];
        let p: &[(&str, f64)] = &[("person", 0.9)];
        let s = score(&clip(&[w, w, p, p]));
        assert!((s.score - 0.4).abs() < 1e-9, "{s:?}");
        assert_eq!(s.label, "weapon");
        assert_eq!(score(&clip(&[p, p])).score, 0.0);
        assert_eq!(score(&clip(&[p, p])).label, "");
        assert!((score(&clip(&[w, w])).score - 0.8).abs() < 1e-9);
    }

    #[test]
    fn best_weapon_per_frame_and_the_dominant_label() {
        let both: &[(&str, f64)] = &[("knife", 0.5), ("weapon", 0.7)];
        let knife: &[(&str, f64)] = &[("knife", 0.9)];
        let s = score(&clip(&[both, knife, knife]));
        assert!((s.score - (0.7 + 0.9 + 0.9) / 3.0).abs() < 1e-9);
        assert_eq!(s.label, "knife");
    }

    #[test]
    fn labels_only_so_no_pixels() {
        let s = FallbackScorer::new(vec!["weapon".into()]);
        assert!(!s.needs_pixels());
        // The score does not depend on the pixels.
        let w: &[(&str, f64)] = &[("weapon", 0.8)];
        let mut a = clip(&[w, w]);
        let before = s.score(&[&a], &Cancel::new()).unwrap();
        a.pixels.iter_mut().for_each(|p| *p = 255);
        assert_eq!(s.score(&[&a], &Cancel::new()).unwrap(), before);
    }

    #[test]
    fn odd_confidences_stay_in_range() {
        let odd: &[(&str, f64)] = &[("weapon", 7.0)];
        let nan: &[(&str, f64)] = &[("weapon", f64::NAN)];
        let s = score(&clip(&[odd, nan]));
        assert!((s.score - 0.5).abs() < 1e-9);
        assert_eq!(score(&clip(&[])).score, 0.0);
    }
}

// SPDX-License-Identifier: MIT OR Apache-2.0
//! A clip model's inputs and outputs, whoever runs it: ONNX Runtime here or an inference
//! server elsewhere. Picking the tensors by name, reading their shapes, turning clips into one
//! normalised, padded input tensor and the output rows into scores are written once, so a model
//! scores the same clips the same way wherever it runs.
//!
//! Defaults follow NVIDIA TAO ActionRecognitionNet (3D, RGB): input `input_rgb`
//! `[N, 3, T, H, W]`, pixels scaled to [-1, 1] (mean 127.5, scale 1/127.5), output `fc_pred`
//! `[N, classes]` logits.

use super::Score;
use crate::clip::Clip;

/// Memory order of the model's input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// `[N, C, T, H, W]` (TAO, PyTorch video models).
    #[default]
    Ncdhw,
    /// `[N, T, C, H, W]`.
    Ndchw,
    /// `[N, T, H, W, C]` (TensorFlow/Keras).
    Ndhwc,
}

impl Layout {
    /// Positions of (T, C, H, W) in the 5-D input shape.
    pub fn axes(self) -> (usize, usize, usize, usize) {
        match self {
            Layout::Ncdhw => (2, 1, 3, 4),
            Layout::Ndchw => (1, 2, 3, 4),
            Layout::Ndhwc => (1, 4, 2, 3),
        }
    }

    /// The 5-D input shape of `n` clips of `t` frames of `h` × `w` RGB pixels.
    pub fn shape(self, n: usize, t: usize, h: usize, w: usize) -> [usize; 5] {
        match self {
            Layout::Ncdhw => [n, 3, t, h, w],
            Layout::Ndchw => [n, t, 3, h, w],
            Layout::Ndhwc => [n, t, h, w, 3],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorOrder {
    #[default]
    Rgb,
    Bgr,
}

/// What turns the model's output into probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// The outputs are probabilities already.
    None,
    #[default]
    Softmax,
    Sigmoid,
}

/// A class counted into the score, by name (needs labels) or index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassRef {
    Index(usize),
    Name(String),
}

impl ClassRef {
    /// Parses `"1,3"` or `"armed,fighting"` (mixed is fine). Empty = every class but the first.
    pub fn parse_list(s: &str) -> Vec<ClassRef> {
        s.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| match c.parse::<usize>() {
                Ok(i) => ClassRef::Index(i),
                Err(_) => ClassRef::Name(c.to_string()),
            })
            .collect()
    }
}

pub const TAO_INPUT: &str = "input_rgb";
pub const TAO_OUTPUT: &str = "fc_pred";

/// Which tensors to use and how clips go in and scores come out: what every scorer of a clip
/// model needs, wherever the model runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelIo {
    /// Input and output names; `None` = the TAO names when the model has them, else the
    /// model's first input and output.
    pub input_name: Option<String>,
    pub output_name: Option<String>,
    pub layout: Layout,
    /// Per channel in model order (R, G, B unless `color` is BGR).
    pub mean: [f32; 3],
    pub scale: [f32; 3],
    pub color: ColorOrder,
    pub activation: Activation,
    pub labels: Vec<String>,
    pub positive: Vec<ClassRef>,
}

impl Default for ModelIo {
    fn default() -> Self {
        ModelIo {
            input_name: None,
            output_name: None,
            layout: Layout::Ncdhw,
            mean: [127.5; 3],
            scale: [1.0 / 127.5; 3],
            color: ColorOrder::Rgb,
            activation: Activation::Softmax,
            labels: Vec::new(),
            positive: Vec::new(),
        }
    }
}

/// What the model says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub input_name: String,
    pub output_name: String,
    /// Static dims; `None` where the model leaves them free.
    pub batch: Option<usize>,
    pub frames: Option<u32>,
    pub height: Option<u32>,
    pub width: Option<u32>,
    pub classes: Option<usize>,
}

/// Positive classes that do not fit the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassError {
    #[error("labels: {0}")]
    Labels(String),
    #[error("positive-classes: {0}")]
    Positive(String),
}

/// The tensor to use among `names`: `wanted` when given (an error when the model lacks it),
/// else the TAO name when present, else the first. `what` is "input" or "output". Errors are
/// reasons, for a message.
pub fn pick_name(
    names: &[&str],
    wanted: Option<&str>,
    tao: &str,
    what: &str,
) -> Result<String, String> {
    match wanted {
        Some(n) if names.contains(&n) => Ok(n.to_string()),
        Some(n) => Err(format!("has no {what} named {n:?} (it has {names:?})")),
        None if names.contains(&tao) => Ok(tao.to_string()),
        None => names
            .first()
            .map(|s| s.to_string())
            .ok_or_else(|| format!("has no {what}")),
    }
}

/// A static dimension: `None` when free (≤ 0), an error beyond `u32`.
fn dim(v: i64, what: &str, tensor: &str) -> Result<Option<u32>, String> {
    if v <= 0 {
        return Ok(None);
    }
    u32::try_from(v).map(Some).map_err(|_| {
        format!(
            "{tensor:?} has {what} {v}, beyond the largest supported ({})",
            u32::MAX
        )
    })
}

/// A clip model's [`ModelInfo`] from its input shape (5-D, in `layout`) and output shape
/// (`[batch, classes]`); dims ≤ 0 are free. Errors are reasons, for a message.
pub fn info_from_shapes(
    input_name: String,
    output_name: String,
    shape: &[i64],
    out_shape: &[i64],
    layout: Layout,
) -> Result<ModelInfo, String> {
    if shape.len() != 5 {
        return Err(format!(
            "input {input_name:?} has shape {shape:?}: a clip model takes a 5-D tensor \
             (batch, channels, frames, height, width in some order)"
        ));
    }
    let (t, c, h, w) = layout.axes();
    if shape[c] > 0 && shape[c] != 3 {
        return Err(format!(
            "input {input_name:?} has shape {shape:?}: with tensor-layout {layout:?} dimension {c} \
             should be 3 colour channels; is the layout right?"
        ));
    }
    if out_shape.len() != 2 {
        return Err(format!(
            "output {output_name:?} has shape {out_shape:?}; expected [batch, classes]"
        ));
    }
    let input = |v: i64, what: &str| dim(v, what, &input_name);
    let (batch, frames, height, width) = (
        input(shape[0], "batch size")?,
        input(shape[t], "frames")?,
        input(shape[h], "height")?,
        input(shape[w], "width")?,
    );
    let classes = dim(out_shape[1], "classes", &output_name)?;
    Ok(ModelInfo {
        input_name,
        output_name,
        batch: batch.map(|b| b as usize),
        frames,
        height,
        width,
        classes: classes.map(|c| c as usize),
    })
}

/// The indices of the positive classes (see [`ModelIo::positive`]) of a model.
pub fn resolve_positive(io: &ModelIo, info: &ModelInfo) -> Result<Vec<usize>, ClassError> {
    if let (Some(n), false) = (info.classes, io.labels.is_empty())
        && n != io.labels.len()
    {
        return Err(ClassError::Labels(format!(
            "{} labels for a model with {n} classes",
            io.labels.len()
        )));
    }
    let classes = info
        .classes
        .or((!io.labels.is_empty()).then_some(io.labels.len()));
    if io.positive.is_empty() {
        // Every class but the first, which TAO-style models keep for "nothing happening".
        return match classes {
            Some(n) if n >= 2 => Ok((1..n).collect()),
            _ => Err(ClassError::Positive(
                "the model's class count is not fixed: name the positive classes".into(),
            )),
        };
    }
    io.positive
        .iter()
        .map(|c| match c {
            ClassRef::Index(i) if classes.is_none_or(|n| *i < n) => Ok(*i),
            ClassRef::Index(i) => Err(ClassError::Positive(format!(
                "class index {i} is out of range for a model with {} classes",
                classes.unwrap_or(0)
            ))),
            ClassRef::Name(name) => io.labels.iter().position(|l| l == name).ok_or_else(|| {
                ClassError::Positive(format!(
                    "no class named {name:?} (labels: {:?}); give labels-file or use indices",
                    io.labels
                ))
            }),
        })
        .collect()
}

/// One batch as the model's input tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `shape`'s product of normalised values; rows past the clips are zeros.
    pub data: Vec<f32>,
    /// 5-D, in the model's layout; `shape[0]` rows.
    pub shape: [usize; 5],
    /// The clips in it (the first rows).
    pub clips: usize,
}

impl Batch {
    pub fn rows(&self) -> usize {
        self.shape[0]
    }
}

/// Checks that `clips` (at least one) share one shape, the model's where it fixes one, and
/// lays them out as its input: normalised, in its layout, zero-padded up to a fixed batch.
/// Errors are reasons, for a message.
pub fn prepare(clips: &[&Clip], io: &ModelIo, info: &ModelInfo) -> Result<Batch, String> {
    let Some(first) = clips.first() else {
        return Err("no clips".into());
    };
    let (t, h, w) = (first.frames, first.height, first.width);
    if clips
        .iter()
        .any(|c| (c.frames, c.height, c.width) != (t, h, w))
    {
        return Err("clips of one batch differ in shape".into());
    }
    let fixed = [
        ("frames", info.frames, t),
        ("height", info.height, h),
        ("width", info.width, w),
    ];
    if let Some((what, Some(m), c)) = fixed.iter().find(|(_, m, c)| m.is_some_and(|m| m != *c)) {
        return Err(format!("clips have {what} {c}; the model takes {m}"));
    }
    // A model with a fixed batch larger than the clips at hand gets zero padding.
    let n = info.batch.unwrap_or(clips.len()).max(clips.len());
    let (t, h, w) = (t as usize, h as usize, w as usize);
    let mut data = vec![0f32; n * 3 * t * h * w];
    preprocess(clips, io, &mut data);
    Ok(Batch {
        data,
        shape: io.layout.shape(n, t, h, w),
        clips: clips.len(),
    })
}

/// Fills `out` (len ≥ clips × 3 × T × H × W) with the normalised clips in `io.layout`.
pub fn preprocess(clips: &[&Clip], io: &ModelIo, out: &mut [f32]) {
    let Some(first) = clips.first() else { return };
    let (t, h, w) = (
        first.frames as usize,
        first.height as usize,
        first.width as usize,
    );
    let per_clip = 3 * t * h * w;
    // Source channel (in the RGB tile) for each model channel.
    let src = match io.color {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Bgr => [2, 1, 0],
    };
    let lut: Vec<[f32; 256]> = (0..3)
        .map(|c| {
            let mut l = [0f32; 256];
            for (v, x) in l.iter_mut().enumerate() {
                *x = (v as f32 - io.mean[c]) * io.scale[c];
            }
            l
        })
        .collect();
    for (n, clip) in clips.iter().enumerate() {
        let dst = &mut out[n * per_clip..(n + 1) * per_clip];
        for f in 0..t {
            let tile = clip.tile(f);
            match io.layout {
                Layout::Ndhwc => {
                    let d = &mut dst[f * h * w * 3..(f + 1) * h * w * 3];
                    for (px, o) in tile.chunks_exact(3).zip(d.chunks_exact_mut(3)) {
                        for c in 0..3 {
                            o[c] = lut[c][px[src[c]] as usize];
                        }
                    }
                }
                Layout::Ncdhw | Layout::Ndchw => {
                    for c in 0..3 {
                        let start = match io.layout {
                            Layout::Ncdhw => (c * t + f) * h * w,
                            _ => (f * 3 + c) * h * w,
                        };
                        let d = &mut dst[start..start + h * w];
                        for (px, o) in tile.chunks_exact(3).zip(d.iter_mut()) {
                            *o = lut[c][px[src[c]] as usize];
                        }
                    }
                }
            }
        }
    }
}

/// The scores of a batch's first `clips` rows from the model's output, `rows` × classes
/// values. Errors are reasons, for a message.
pub fn scores(
    values: &[f32],
    rows: usize,
    clips: usize,
    io: &ModelIo,
    positive: &[usize],
) -> Result<Vec<Score>, String> {
    let classes = values.len().checked_div(rows).unwrap_or(0);
    if classes == 0 || classes * rows != values.len() || clips > rows {
        return Err(format!(
            "the model gave {} values for a batch of {rows}",
            values.len()
        ));
    }
    Ok(values
        .chunks_exact(classes)
        .take(clips)
        .map(|row| score_outputs(row, io.activation, positive, &io.labels))
        .collect())
}

/// Turns one clip's outputs into a score and the top class's name.
/// The class index of a label [`score_outputs`] gave: its place in the labels, or `N` of the
/// `class-N` it names without labels.
pub fn class_index(io: &ModelIo, label: &str) -> Option<u32> {
    match io.labels.iter().position(|l| l == label) {
        Some(i) => u32::try_from(i).ok(),
        None if io.labels.is_empty() => label.strip_prefix("class-")?.parse().ok(),
        None => None,
    }
}

pub fn score_outputs(
    logits: &[f32],
    activation: Activation,
    positive: &[usize],
    labels: &[String],
) -> Score {
    let probs: Vec<f64> = match activation {
        Activation::None => logits.iter().map(|&v| v as f64).collect(),
        Activation::Sigmoid => logits
            .iter()
            .map(|&v| 1.0 / (1.0 + (-(v as f64)).exp()))
            .collect(),
        Activation::Softmax => {
            let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let exps: Vec<f64> = logits.iter().map(|&v| (v as f64 - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            exps.into_iter().map(|e| e / sum).collect()
        }
    };
    let score: f64 = positive.iter().filter_map(|&i| probs.get(i)).sum();
    // The first of equal maxima.
    let top = (0..probs.len()).fold(0, |best, i| if probs[i] > probs[best] { i } else { best });
    let label = labels
        .get(top)
        .cloned()
        .unwrap_or_else(|| format!("class-{top}"));
    // NaN stays NaN (the pool answers it `error`); rounding beyond [0, 1] is clamped.
    let score = if score.is_nan() {
        score
    } else {
        score.clamp(0.0, 1.0)
    };
    Score { score, label }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_gives_back_its_class_index() {
        let io = |labels: &[&str]| ModelIo {
            labels: labels.iter().map(|l| l.to_string()).collect(),
            ..Default::default()
        };
        let named = io(&["normal", "armed"]);
        assert_eq!(class_index(&named, "armed"), Some(1));
        assert_eq!(
            class_index(&named, "class-1"),
            None,
            "labels given: names only"
        );
        assert_eq!(class_index(&named, "fighting"), None);
        let unnamed = io(&[]);
        assert_eq!(class_index(&unnamed, "class-3"), Some(3));
        assert_eq!(class_index(&unnamed, "armed"), None);
        // What score_outputs returns maps back to its top class.
        let s = score_outputs(&[0.1, 3.0], Activation::Softmax, &[1], &named.labels);
        assert_eq!(class_index(&named, &s.label), Some(1));
    }
    use crate::detections::SourceFrame;
    use crate::geometry::PixelRect;

    fn clip(t: u32, h: u32, w: u32, fill: impl Fn(usize) -> u8) -> Clip {
        let n = (t * h * w * 3) as usize;
        Clip {
            request_id: 1,
            source: SourceFrame::default(),
            width: w,
            height: h,
            frames: t,
            real_frames: t,
            pixels: (0..n).map(fill).collect(),
            frame_labels: crate::clip::FrameLabels::empty(t as usize),
            region: PixelRect::full(w, h),
            trigger_label: String::new(),
            trigger_confidence: 1.0,
            start_pts: None,
            end_pts: None,
        }
    }

    fn info(batch: Option<usize>, thw: [Option<u32>; 3], classes: Option<usize>) -> ModelInfo {
        ModelInfo {
            input_name: TAO_INPUT.into(),
            output_name: TAO_OUTPUT.into(),
            batch,
            frames: thw[0],
            height: thw[1],
            width: thw[2],
            classes,
        }
    }

    fn plain() -> ModelIo {
        ModelIo {
            mean: [0.0; 3],
            scale: [1.0; 3],
            ..Default::default()
        }
    }

    #[test]
    fn preprocess_lays_out_and_normalises() {
        // 2 frames of 1×2 pixels; byte i has value i.
        let c = clip(2, 1, 2, |i| i as u8);
        let cfg = plain();
        let mut out = vec![0.0; 12];
        preprocess(&[&c], &cfg, &mut out);
        // NCDHW: channel R of frame 0 = bytes 0, 3; frame 1 = 6, 9; then G ...
        assert_eq!(out, vec![0., 3., 6., 9., 1., 4., 7., 10., 2., 5., 8., 11.]);

        let mut out = vec![0.0; 12];
        preprocess(
            &[&c],
            &ModelIo {
                layout: Layout::Ndchw,
                ..cfg.clone()
            },
            &mut out,
        );
        assert_eq!(out, vec![0., 3., 1., 4., 2., 5., 6., 9., 7., 10., 8., 11.]);

        let mut out = vec![0.0; 12];
        preprocess(
            &[&c],
            &ModelIo {
                layout: Layout::Ndhwc,
                color: ColorOrder::Bgr,
                ..cfg
            },
            &mut out,
        );
        assert_eq!(out, vec![2., 1., 0., 5., 4., 3., 8., 7., 6., 11., 10., 9.]);
    }

    #[test]
    fn tao_normalisation_maps_to_minus_one_one() {
        let c = clip(1, 1, 1, |i| [0u8, 255, 128][i]);
        let mut out = vec![0.0; 3];
        preprocess(&[&c], &ModelIo::default(), &mut out);
        assert!((out[0] + 1.0).abs() < 1e-6 && (out[1] - 1.0).abs() < 1e-6 && out[2].abs() < 0.01);
    }

    #[test]
    fn layouts_give_their_shapes() {
        assert_eq!(Layout::Ncdhw.shape(2, 16, 8, 4), [2, 3, 16, 8, 4]);
        assert_eq!(Layout::Ndchw.shape(2, 16, 8, 4), [2, 16, 3, 8, 4]);
        assert_eq!(Layout::Ndhwc.shape(2, 16, 8, 4), [2, 16, 8, 4, 3]);
    }

    #[test]
    fn a_fixed_batch_is_zero_padded_and_a_free_one_fits_the_clips() {
        let a = clip(1, 1, 2, |_| 255);
        let b = clip(1, 1, 2, |_| 255);
        let batch = prepare(&[&a, &b], &plain(), &info(Some(4), [None; 3], None)).unwrap();
        assert_eq!(
            (batch.shape, batch.clips, batch.rows()),
            ([4, 3, 1, 1, 2], 2, 4)
        );
        assert_eq!(batch.data.len(), 4 * 6);
        assert!(batch.data[..12].iter().all(|&v| v == 255.0));
        assert!(
            batch.data[12..].iter().all(|&v| v == 0.0),
            "padding rows are zeros"
        );

        let batch = prepare(&[&a, &b], &plain(), &info(None, [None; 3], None)).unwrap();
        assert_eq!(batch.shape[0], 2);
        // More clips than a fixed batch: the clips' count (the caller caps batches).
        let batch = prepare(&[&a, &b], &plain(), &info(Some(1), [None; 3], None)).unwrap();
        assert_eq!(batch.shape[0], 2);
    }

    #[test]
    fn batches_of_mixed_or_wrong_shapes_are_refused() {
        let a = clip(2, 1, 2, |_| 0);
        let b = clip(1, 1, 2, |_| 0);
        let e = prepare(&[&a, &b], &plain(), &info(None, [None; 3], None)).unwrap_err();
        assert!(e.contains("differ in shape"), "{e}");
        let e = prepare(&[&a], &plain(), &info(None, [Some(16), None, None], None)).unwrap_err();
        assert!(e.contains("frames 2") && e.contains("16"), "{e}");
        let e = prepare(&[&a], &plain(), &info(None, [None, None, Some(3)], None)).unwrap_err();
        assert!(e.contains("width 2") && e.contains('3'), "{e}");
        assert!(prepare(&[], &plain(), &info(None, [None; 3], None)).is_err());
    }

    #[test]
    fn names_are_the_wanted_the_tao_or_the_first() {
        let names = ["x", "input_rgb"];
        assert_eq!(
            pick_name(&names, None, TAO_INPUT, "input").unwrap(),
            "input_rgb"
        );
        assert_eq!(
            pick_name(&["x", "y"], None, TAO_INPUT, "input").unwrap(),
            "x"
        );
        assert_eq!(
            pick_name(&names, Some("x"), TAO_INPUT, "input").unwrap(),
            "x"
        );
        let e = pick_name(&names, Some("scores"), TAO_OUTPUT, "output").unwrap_err();
        assert!(
            e.contains("no output named \"scores\"") && e.contains("input_rgb"),
            "{e}"
        );
        assert_eq!(
            pick_name(&[], None, TAO_INPUT, "input").unwrap_err(),
            "has no input"
        );
    }

    #[test]
    fn shapes_give_the_static_dims_and_refuse_what_does_not_fit() {
        let i = info_from_shapes(
            "in".into(),
            "out".into(),
            &[-1, 3, 16, 112, 96],
            &[-1, 2],
            Layout::Ncdhw,
        )
        .unwrap();
        assert_eq!(
            (i.batch, i.frames, i.height, i.width, i.classes),
            (None, Some(16), Some(112), Some(96), Some(2))
        );
        let i = info_from_shapes(
            "in".into(),
            "out".into(),
            &[4, 8, 64, 32, 3],
            &[4, 0],
            Layout::Ndhwc,
        )
        .unwrap();
        assert_eq!(
            (i.batch, i.frames, i.height, i.width, i.classes),
            (Some(4), Some(8), Some(64), Some(32), None)
        );
        let shape = |s: &[i64], o: &[i64], l| info_from_shapes("in".into(), "out".into(), s, o, l);
        let e = shape(&[1, 3, 16, 112], &[1, 2], Layout::Ncdhw).unwrap_err();
        assert!(e.contains("5-D"), "{e}");
        let e = shape(&[1, 16, 112, 112, 3], &[1, 2], Layout::Ncdhw).unwrap_err();
        assert!(e.contains("layout"), "{e}");
        let e = shape(&[1, 3, 16, 112, 112], &[1, 2, 1], Layout::Ncdhw).unwrap_err();
        assert!(e.contains("[batch, classes]"), "{e}");
    }

    #[test]
    fn dims_beyond_u32_are_errors_naming_the_value() {
        let big = i64::from(u32::MAX) + 1;
        let shape =
            |s: &[i64], o: &[i64]| info_from_shapes("in".into(), "out".into(), s, o, Layout::Ncdhw);
        let e = shape(&[1, 3, big, 112, 112], &[1, 2]).unwrap_err();
        assert!(e.contains("frames") && e.contains(&big.to_string()), "{e}");
        let e = shape(&[1, 3, 16, 112, i64::MAX], &[1, 2]).unwrap_err();
        assert!(
            e.contains("width") && e.contains(&i64::MAX.to_string()),
            "{e}"
        );
        let e = shape(&[1, 3, 16, 112, 112], &[1, big]).unwrap_err();
        assert!(e.contains("\"out\"") && e.contains("classes"), "{e}");
        // The largest u32 itself still fits.
        let i = shape(&[1, 3, u32::MAX as i64, 1, 1], &[1, 2]).unwrap();
        assert_eq!(i.frames, Some(u32::MAX));
    }

    #[test]
    fn positive_classes_by_index_name_or_default() {
        let labels: Vec<String> = ["normal", "armed", "fighting"].map(String::from).to_vec();
        let io = |positive, labels: &[String]| ModelIo {
            positive,
            labels: labels.to_vec(),
            ..Default::default()
        };
        let three = info(None, [None; 3], Some(3));
        assert_eq!(resolve_positive(&io(vec![], &[]), &three).unwrap(), [1, 2]);
        assert_eq!(
            resolve_positive(&io(ClassRef::parse_list("armed,0"), &labels), &three).unwrap(),
            [1, 0]
        );
        let e = resolve_positive(&io(ClassRef::parse_list("3"), &[]), &three).unwrap_err();
        assert!(e.to_string().contains("index 3"), "{e}");
        let e = resolve_positive(&io(ClassRef::parse_list("gun"), &labels), &three).unwrap_err();
        assert!(e.to_string().contains("\"gun\""), "{e}");
        let e = resolve_positive(&io(vec![], &labels[..2]), &three).unwrap_err();
        assert_eq!(e.to_string(), "labels: 2 labels for a model with 3 classes");
        // Free class count: labels fix it, else the positive classes must be named.
        let free = info(None, [None; 3], None);
        assert_eq!(
            resolve_positive(&io(vec![], &labels), &free).unwrap(),
            [1, 2]
        );
        assert!(matches!(
            resolve_positive(&io(vec![], &[]), &free),
            Err(ClassError::Positive(_))
        ));
    }

    #[test]
    fn activations_and_positive_classes() {
        let labels: Vec<String> = ["normal", "armed", "fighting"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = score_outputs(&[0.0, 0.0, 0.0], Activation::Softmax, &[1, 2], &labels);
        assert!((s.score - 2.0 / 3.0).abs() < 1e-9);
        let s = score_outputs(&[0.0, 5.0, 0.0], Activation::Softmax, &[1], &labels);
        assert!(s.score > 0.98 && s.label == "armed");
        let s = score_outputs(&[0.0, 0.0], Activation::Sigmoid, &[0, 1], &[]);
        assert_eq!(s.score, 1.0, "clamped");
        assert_eq!(s.label, "class-0");
        let s = score_outputs(&[0.2, 0.3], Activation::None, &[1], &[]);
        assert!((s.score - 0.3).abs() < 1e-6);
        assert!(
            score_outputs(&[f32::NAN, 0.0], Activation::Softmax, &[1], &[])
                .score
                .is_nan()
        );
    }

    #[test]
    fn scores_come_from_the_clips_rows_only() {
        let io = ModelIo {
            activation: Activation::None,
            ..Default::default()
        };
        // Three rows of two classes; the third is padding.
        let s = scores(&[0.9, 0.1, 0.2, 0.8, 0.5, 0.5], 3, 2, &io, &[1]).unwrap();
        assert_eq!(s.len(), 2);
        assert!((s[0].score - 0.1).abs() < 1e-6 && s[0].label == "class-0");
        assert!((s[1].score - 0.8).abs() < 1e-6 && s[1].label == "class-1");
        let e = scores(&[0.1, 0.2, 0.3], 2, 2, &io, &[1]).unwrap_err();
        assert!(e.contains("3 values") && e.contains("batch of 2"), "{e}");
        assert!(scores(&[], 1, 1, &io, &[1]).is_err());
        assert!(scores(&[0.1, 0.2], 0, 0, &io, &[1]).is_err());
        assert!(scores(&[0.1, 0.2], 1, 2, &io, &[1]).is_err());
    }

    #[test]
    fn class_lists_parse() {
        assert_eq!(
            ClassRef::parse_list(" 1, armed ,,3"),
            vec![
                ClassRef::Index(1),
                ClassRef::Name("armed".into()),
                ClassRef::Index(3)
            ]
        );
        assert!(ClassRef::parse_list("").is_empty());
    }
}

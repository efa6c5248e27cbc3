// SPDX-License-Identifier: MIT OR Apache-2.0
//! Label text: a TrueType font rasterised with `ab_glyph` into small BGRA bitmaps, the pixel
//! layout `GstVideoOverlayRectangle` takes on little-endian machines.
//!
//! Only single lines of text are laid out (advance plus kerning, no shaping): labels are short
//! ASCII-like strings (`person #7 verified 0.91`), which DejaVu covers without shaping.

use std::fmt;
use std::path::{Path, PathBuf};

use ab_glyph::{Font as _, FontVec, PxScale, ScaleFont, point};

/// The font the element uses unless `font-file` says otherwise (Debian's `fonts-dejavu-core`).
pub const DEFAULT_FONT_FILE: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Why a font could not be used; the message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FontError {
    #[error(
        "cannot read font file {path}: {source}; install Debian's fonts-dejavu-core \
         (apt-get install fonts-dejavu-core) or set font-file to a TrueType/OpenType font"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a TrueType/OpenType font; set font-file to a .ttf or .otf file")]
    Invalid { path: PathBuf },
    #[error("font {path} has no glyphs for Latin letters and digits; choose another font-file")]
    NoLatin { path: PathBuf },
}

/// A colour as `0xAARRGGBB` (the convention of `textoverlay`'s `color` property).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Argb(pub u32);

impl Argb {
    pub fn a(self) -> u8 {
        (self.0 >> 24) as u8
    }
    pub fn r(self) -> u8 {
        (self.0 >> 16) as u8
    }
    pub fn g(self) -> u8 {
        (self.0 >> 8) as u8
    }
    pub fn b(self) -> u8 {
        self.0 as u8
    }
    /// The four bytes in BGRA memory order.
    pub fn bgra(self) -> [u8; 4] {
        [self.b(), self.g(), self.r(), self.a()]
    }
}

impl fmt::Debug for Argb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08X}", self.0)
    }
}

/// A parsed font file.
pub struct Font {
    font: FontVec,
    path: PathBuf,
}

impl fmt::Debug for Font {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Font").field("path", &self.path).finish()
    }
}

/// Space around the text inside its background box, in pixels, as a share of the font size.
const PADDING_SHARE: f32 = 0.2;

impl Font {
    /// Reads and checks the font: it must parse and cover the characters labels use.
    pub fn load(path: &Path) -> Result<Font, FontError> {
        let data = std::fs::read(path).map_err(|source| FontError::Read {
            path: path.to_owned(),
            source,
        })?;
        let font = FontVec::try_from_vec(data).map_err(|_| FontError::Invalid {
            path: path.to_owned(),
        })?;
        // Glyph 0 is .notdef: a font without these draws boxes instead of labels.
        if "Aa0#.".chars().any(|c| font.glyph_id(c).0 == 0) {
            return Err(FontError::NoLatin {
                path: path.to_owned(),
            });
        }
        Ok(Font {
            font,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn padding(px: f32) -> u32 {
        (px * PADDING_SHARE).ceil() as u32
    }

    /// The size of `text`'s label box at `px` pixels per em: the text's advance width and line
    /// height, plus padding on every side.
    pub fn measure(&self, text: &str, px: f32) -> (u32, u32) {
        let scaled = self.font.as_scaled(PxScale::from(px));
        let mut width = 0.0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                width += scaled.kern(p, id);
            }
            width += scaled.h_advance(id);
            prev = Some(id);
        }
        let height = scaled.ascent() - scaled.descent();
        let pad = Self::padding(px);
        (
            width.max(0.0).ceil() as u32 + 2 * pad,
            height.max(0.0).ceil() as u32 + 2 * pad,
        )
    }

    /// Renders `text` in `fg` over a `bg` box of `width` x `height` pixels, as non-premultiplied
    /// BGRA rows without padding. Text that does not fit is cut at the box's edges.
    pub fn render(
        &self,
        text: &str,
        px: f32,
        fg: Argb,
        bg: Argb,
        width: u32,
        height: u32,
    ) -> Vec<u8> {
        let (w, h) = (width as usize, height as usize);
        // Coverage first, colours last: overlapping glyph edges keep the stronger ink instead
        // of blending twice.
        let mut coverage = vec![0.0f32; w * h];
        let scaled = self.font.as_scaled(PxScale::from(px));
        let pad = Self::padding(px) as f32;
        let baseline = pad + scaled.ascent();
        let mut x = pad;
        let mut prev = None;
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = prev {
                x += scaled.kern(p, id);
            }
            let glyph = id.with_scale_and_position(scaled.scale(), point(x, baseline));
            x += scaled.h_advance(id);
            prev = Some(id);
            let Some(outlined) = self.font.outline_glyph(glyph) else {
                continue; // spaces have no outline
            };
            let bounds = outlined.px_bounds();
            outlined.draw(|gx, gy, c| {
                let cx = bounds.min.x as i64 + gx as i64;
                let cy = bounds.min.y as i64 + gy as i64;
                if cx < 0 || cy < 0 || cx >= w as i64 || cy >= h as i64 {
                    return;
                }
                let cell = &mut coverage[cy as usize * w + cx as usize];
                *cell = cell.max(c.clamp(0.0, 1.0));
            });
        }
        let (fg, bg) = (fg.bgra(), bg.bgra());
        let mut out = Vec::with_capacity(w * h * 4);
        for c in coverage {
            for k in 0..4 {
                out.push((bg[k] as f32 * (1.0 - c) + fg[k] as f32 * c).round() as u8);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dejavu() -> Font {
        // `make deps` installs fonts-dejavu-core; without it these tests fail, naming it.
        Font::load(Path::new(DEFAULT_FONT_FILE)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_missing_font_names_its_path_and_the_package() {
        let err = Font::load(Path::new("/nonexistent/Nope.ttf")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/Nope.ttf"), "{msg}");
        assert!(msg.contains("fonts-dejavu-core"), "{msg}");
    }

    #[test]
    fn a_file_that_is_not_a_font_is_refused() {
        let dir = std::env::temp_dir().join(format!("iguard-font-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.ttf");
        std::fs::write(&path, b"not a font at all").unwrap();
        let err = Font::load(&path).unwrap_err();
        assert!(matches!(err, FontError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("bad.ttf"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn longer_text_and_larger_sizes_measure_larger() {
        let font = dejavu();
        let (w1, h1) = font.measure("person", 16.0);
        let (w2, h2) = font.measure("person #12 verified 0.91", 16.0);
        let (w3, h3) = font.measure("person", 32.0);
        assert!(w2 > w1 && h2 == h1, "{w1}x{h1} vs {w2}x{h2}");
        assert!(w3 > w1 && h3 > h1, "{w1}x{h1} vs {w3}x{h3}");
        // Roughly a line of 16 px text: not zero, not absurd.
        assert!((14..=30).contains(&h1), "height {h1}");
    }

    #[test]
    fn rendered_text_puts_ink_inside_the_box_over_the_background() {
        let font = dejavu();
        let (w, h) = font.measure("A#7", 20.0);
        let fg = Argb(0xFF00_0000);
        let bg = Argb(0xFFFF_FFFF);
        let px = font.render("A#7", 20.0, fg, bg, w, h);
        assert_eq!(px.len(), (w * h * 4) as usize);
        let dark = px.chunks(4).filter(|p| p[0] < 64).count();
        let white = px.chunks(4).filter(|p| p == &[255, 255, 255, 255]).count();
        assert!(dark > 20, "only {dark} inked pixels");
        assert!(
            white > dark,
            "background should dominate: {white} vs {dark}"
        );
        // Padding: the first and last rows stay background.
        assert!(px[..(w * 4) as usize].iter().all(|&b| b == 255));
        assert!(px[((h - 1) * w * 4) as usize..].iter().all(|&b| b == 255));
        // Alpha stays opaque everywhere with opaque colours.
        assert!(px.chunks(4).all(|p| p[3] == 255));
    }

    #[test]
    fn text_wider_than_its_box_is_cut_not_overflowing() {
        let font = dejavu();
        let px = font.render(
            "a very long label",
            16.0,
            Argb(0xFF000000),
            Argb(0x80FFFFFF),
            10,
            6,
        );
        assert_eq!(px.len(), 10 * 6 * 4);
    }
}

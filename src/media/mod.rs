//! Pictures: a post's photo or chart → a small JPEG or PNG with no metadata, for mail and web.
//!
//! A picture is decoded with the `image` crate (JPEG, PNG, WebP, GIF — a GIF's first frame),
//! turned upright by its EXIF orientation (TIFF/EXIF 2.32 tag 0x0112), made at most
//! [`MAX_WIDTH`] pixels wide, and encoded again from its pixels alone: nothing of the file's
//! EXIF (GPS position, camera), XMP, IPTC, ICC profile or comments is carried over, since the
//! new file is written from pixels only. Photos become JPEG; pictures with transparency or few
//! colours (charts, logos) PNG.
//!
//! Bounded before any pixel is allocated: a file over [`MAX_PICTURE_BYTES`] is never read
//! whole, and the decoder's header gives the size, refused over [`MAX_PIXELS`], with the
//! decoder's own allocations capped (`image::Limits::max_alloc`). So a 30,000 × 30,000 PNG of a
//! few kilobytes (a decompression bomb) is refused before its pixels are unpacked.
//!
//! Each result is named by a hash of the source file's bytes ([`name_for`]): the same picture
//! always has the same URL, and a folder of earlier results (`state/media/`) is the cache —
//! an unchanged picture is never decoded again.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};

/// The largest picture file read: 20 MiB, twice a 50-megapixel phone's JPEG.
pub const MAX_PICTURE_BYTES: u64 = 20 * 1024 * 1024;
/// The most pixels a picture may have (40 megapixels): more is no photo a phone takes.
pub const MAX_PIXELS: u64 = 40_000_000;
/// The widest picture published: twice the email's 600-pixel column, sharp on high-density screens.
pub const MAX_WIDTH: u32 = 1200;
/// The width of the email's column, in CSS pixels: the most a picture is shown at.
pub const COLUMN_WIDTH: u32 = 600;
/// JPEG quality: small enough for mail (a 4,000 × 3,000 photo comes to some 150–250 KB at
/// 1,200 pixels), without visible blocks.
const JPEG_QUALITY: u8 = 82;
/// What the decoder may allocate: the pixels of the largest picture at 4 bytes each, and room
/// for its working buffers.
const MAX_DECODER_ALLOC: u64 = MAX_PIXELS * 4 + 64 * 1024 * 1024;
/// Changed when the output for the same source would change, so that no old result is reused.
const VERSION: &[u8] = b"tayori-picture-1\0";

/// One re-encoded picture, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// `<hash>.jpg` or `<hash>.png`: its file name under `public/media/`.
    pub name: String,
    pub width: u32,
    pub height: u32,
}

impl Encoded {
    /// The size it is shown at, in CSS pixels: its own, or [`COLUMN_WIDTH`] wide with its
    /// height in proportion.
    pub fn shown_size(&self) -> (u32, u32) {
        if self.width <= COLUMN_WIDTH {
            return (self.width, self.height);
        }
        let height = (u64::from(self.height) * u64::from(COLUMN_WIDTH) + u64::from(self.width) / 2)
            / u64::from(self.width);
        (COLUMN_WIDTH, (height as u32).max(1))
    }
}

/// Why a picture cannot be published. Each is permanent for this file: it must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PictureError {
    #[error("{size} bytes; a picture may have at most {} MiB: make it smaller", MAX_PICTURE_BYTES >> 20)]
    TooLarge { size: u64 },
    #[error("{width} × {height} pixels; a picture may have at most {} million: make it smaller", MAX_PIXELS / 1_000_000)]
    TooManyPixels { width: u32, height: u32 },
    #[error("a HEIC/HEIF picture, which tayori cannot read: export it as JPEG (on an iPhone: Settings → Camera → Formats → Most Compatible)")]
    Heic,
    #[error("not a picture tayori can read (JPEG, PNG, WebP or GIF){}", .0.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Unreadable(Option<String>),
    #[error("cannot be decoded: {0}")]
    Broken(String),
    /// The disk's fault, not the picture's: the post waits and is read again.
    #[error("cannot keep its re-encoded copy (will try again): {0}")]
    Cache(String),
}

/// The name a source file's result gets: a hash of its bytes (and of [`VERSION`]), 32 hex
/// digits, and the extension.
pub fn name_for(source: &[u8], ext: &str) -> String {
    let digest = Sha256::new()
        .chain_update(VERSION)
        .chain_update(source)
        .finalize();
    format!("{}.{ext}", crate::text::hex(&digest[..16]))
}

/// The folder of re-encoded pictures: `state/media/` under the newsletter folder.
pub fn cache_dir(root: &Path) -> PathBuf {
    root.join("state").join("media")
}

/// A picture's earlier result in `cache`, when there is one: read from its header only.
pub fn cached(source: &[u8], cache: &Path) -> Option<Encoded> {
    ["jpg", "png"].into_iter().find_map(|ext| {
        let name = name_for(source, ext);
        let (width, height) = ImageReader::open(cache.join(&name))
            .ok()?
            .with_guessed_format()
            .ok()?
            .into_dimensions()
            .ok()?;
        Some(Encoded {
            name,
            width,
            height,
        })
    })
}

/// Re-encodes `source` (see the module's description): the result and its bytes.
pub fn encode(source: &[u8]) -> Result<(Encoded, Vec<u8>), PictureError> {
    if source.len() as u64 > MAX_PICTURE_BYTES {
        return Err(PictureError::TooLarge {
            size: source.len() as u64,
        });
    }
    let (image, lossless) = decode(source)?;
    let image = if image.width() > MAX_WIDTH {
        let height = ((u64::from(image.height()) * u64::from(MAX_WIDTH)
            + u64::from(image.width()) / 2)
            / u64::from(image.width())) as u32;
        image.resize_exact(
            MAX_WIDTH,
            height.max(1),
            image::imageops::FilterType::CatmullRom,
        )
    } else {
        image
    };
    let (bytes, ext) = if is_graphic(&image) {
        (png(&image)?, "png")
    } else {
        let jpeg = jpeg(&image)?;
        // A chart or screenshot saved losslessly stays sharp as PNG, unless that is far larger.
        match lossless.then(|| png(&image)).transpose()? {
            Some(png) if png.len() <= jpeg.len() * 2 => (png, "png"),
            _ => (jpeg, "jpg"),
        }
    };
    let encoded = Encoded {
        name: name_for(source, ext),
        width: image.width(),
        height: image.height(),
    };
    Ok((encoded, bytes))
}

/// Decodes `source` upright, within the bounds; also says whether it was stored losslessly.
fn decode(source: &[u8]) -> Result<(DynamicImage, bool), PictureError> {
    if is_heic(source) {
        return Err(PictureError::Heic);
    }
    let broken = |e: image::ImageError| PictureError::Broken(e.to_string());
    let mut reader = ImageReader::new(Cursor::new(source))
        .with_guessed_format()
        .map_err(|e| PictureError::Broken(e.to_string()))?;
    let format = reader.format().ok_or(PictureError::Unreadable(None))?;
    // The JPEG decoder fills a cut-off picture with gray rather than failing.
    if format == ImageFormat::Jpeg && !jpeg_is_complete(source) {
        return Err(PictureError::Broken(
            "the file ends before its picture does (cut off, or still being copied)".into(),
        ));
    }
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODER_ALLOC);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Unsupported(u) => PictureError::Unreadable(Some(u.to_string())),
        e => broken(e),
    })?;
    // The header's size, checked before a single pixel is allocated.
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(PictureError::TooManyPixels { width, height });
    }
    if decoder.total_bytes() > MAX_DECODER_ALLOC {
        return Err(PictureError::TooManyPixels { width, height });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(broken)?;
    image.apply_orientation(orientation);
    let lossless = matches!(format, ImageFormat::Png | ImageFormat::Gif);
    Ok((image, lossless))
}

/// Whether a JPEG's main picture ends (ITU-T T.81 §B.2): its segments are walked from the
/// start up to the first scan (so an EXIF thumbnail's markers are skipped by length), and an
/// end-of-image marker must follow — inside scan data `FF D9` means nothing else. Data after
/// it (a phone's motion-photo trailer) is allowed.
fn jpeg_is_complete(source: &[u8]) -> bool {
    let mut at = 2;
    while at + 4 <= source.len() {
        if source[at] != 0xFF {
            return false;
        }
        let marker = source[at + 1];
        if marker == 0xFF {
            at += 1;
            continue;
        }
        let length = usize::from(u16::from_be_bytes([source[at + 2], source[at + 3]]));
        if marker == 0xDA {
            let scan = at + 2 + length;
            return source
                .get(scan..)
                .is_some_and(|rest| rest.windows(2).any(|w| w == [0xFF, 0xD9]));
        }
        at += 2 + length;
    }
    false
}

/// HEIC/HEIF (ISO/IEC 23008-12): an ISO BMFF `ftyp` box naming a HEIF brand.
fn is_heic(source: &[u8]) -> bool {
    source.get(4..8) == Some(b"ftyp")
        && source.get(8..12).is_some_and(|brand| {
            matches!(
                brand,
                b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1"
            )
        })
}

/// Whether a picture is a graphic (kept as PNG): it uses transparency, or has at most 256
/// colours.
fn is_graphic(image: &DynamicImage) -> bool {
    if image.has_alpha() && image.to_rgba8().pixels().any(|p| p.0[3] < 255) {
        return true;
    }
    let mut colours = std::collections::HashSet::new();
    for p in image.to_rgb8().pixels() {
        if colours.insert(p.0) && colours.len() > 256 {
            return false;
        }
    }
    true
}

fn jpeg(image: &DynamicImage) -> Result<Vec<u8>, PictureError> {
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
    image
        .to_rgb8()
        .write_with_encoder(encoder)
        .map_err(|e| PictureError::Broken(e.to_string()))?;
    Ok(out)
}

fn png(image: &DynamicImage) -> Result<Vec<u8>, PictureError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut out = Vec::new();
    let encoder =
        PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::Adaptive);
    let written = if image.has_alpha() {
        image.to_rgba8().write_with_encoder(encoder)
    } else {
        image.to_rgb8().write_with_encoder(encoder)
    };
    written.map_err(|e| PictureError::Broken(e.to_string()))?;
    Ok(out)
}

/// Where results are looked up, and whether new ones are kept there. `build`, `send` and the
/// daemon keep them; `check`, `preview` and `status` only look (they change nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    pub dir: PathBuf,
    pub write: bool,
}

/// A source picture's result: the cached one, else made now (and kept in the cache when it
/// may be written). A cache that cannot be written is an error: the post waits.
pub fn prepare(source: &[u8], cache: Option<&Cache>) -> Result<Encoded, PictureError> {
    if let Some(hit) = cache.and_then(|c| cached(source, &c.dir)) {
        return Ok(hit);
    }
    let (encoded, bytes) = encode(source)?;
    if let Some(c) = cache.filter(|c| c.write) {
        let path = c.dir.join(&encoded.name);
        // Private until published: a draft's picture is nobody's business.
        crate::files::write_private(&path, &bytes)
            .map_err(|e| PictureError::Cache(format!("{}: {e}", path.display())))?;
    }
    Ok(encoded)
}

/// Copies the pictures named from `cache` into `public/media/` when not there yet (each
/// name's bytes never change, so a file present is the right one).
pub fn publish(cache: &Path, public: &Path, names: &[&str]) -> std::io::Result<()> {
    let media = public.join("media");
    for name in names {
        let target = media.join(name);
        if target.exists() {
            continue;
        }
        let bytes = std::fs::read(cache.join(name)).map_err(|e| {
            std::io::Error::new(e.kind(), format!("{}: {e}", cache.join(name).display()))
        })?;
        crate::files::write_atomic(&target, &bytes)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", target.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

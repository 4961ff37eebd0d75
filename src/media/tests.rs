use super::*;

/// A PNG of `width` × `height` whose pixel data is a few bytes: what a decompression bomb is.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32fast::hash(&body).to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    // A stored-deflate stream holding a few zero bytes.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x01, 0x00, 0xfe, 0xff, 0, 0, 1, 0, 1],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A noisy photo-like JPEG of `width` × `height`.
fn photo(width: u32, height: u32) -> Vec<u8> {
    let mut seed = 7u32;
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let noise = (seed >> 16) as u8 % 24;
        image::Rgb([
            (x * 255 / width) as u8 / 2 + noise,
            (y * 255 / height) as u8 / 2 + noise,
            128 + noise,
        ])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

/// `jpeg` with an EXIF block saying "rotate 90° clockwise to view" (orientation 6) and a
/// camera maker, inserted after the start-of-image marker.
fn with_exif_orientation_6(jpeg: &[u8]) -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend(2u16.to_le_bytes());
    // Orientation (0x0112), SHORT, 1, value 6.
    tiff.extend([0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    // Make (0x010F), ASCII, 4, "GPS\0" inline.
    tiff.extend([0x0F, 0x01, 2, 0, 4, 0, 0, 0, b'G', b'P', b'S', 0]);
    tiff.extend([0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend(&jpeg[2..]);
    out
}

#[test]
fn a_decompression_bomb_is_refused_from_its_header() {
    let bomb = png_header_only(30_000, 30_000);
    assert!(bomb.len() < 100);
    assert_eq!(
        encode(&bomb).unwrap_err(),
        PictureError::TooManyPixels {
            width: 30_000,
            height: 30_000
        }
    );
}

#[test]
fn a_wide_photo_becomes_a_1200_pixel_jpeg() {
    let (encoded, bytes) = encode(&photo(2400, 1600)).unwrap();
    assert_eq!((encoded.width, encoded.height), (1200, 800));
    assert!(encoded.name.ends_with(".jpg"), "{}", encoded.name);
    let back = image::load_from_memory(&bytes).unwrap();
    assert_eq!((back.width(), back.height()), (1200, 800));
    assert_eq!(encoded.shown_size(), (600, 400));
}

#[test]
fn orientation_is_applied_and_exif_is_gone() {
    let source = with_exif_orientation_6(&photo(40, 20));
    assert!(source.windows(4).any(|w| w == b"Exif"));
    let (encoded, bytes) = encode(&source).unwrap();
    assert_eq!((encoded.width, encoded.height), (20, 40));
    for marker in [
        &b"Exif"[..],
        b"GPS",
        b"http://ns.adobe.com/xap",
        b"ICC_PROFILE",
    ] {
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "{:?} in the output",
            String::from_utf8_lossy(marker)
        );
    }
}

#[test]
fn a_chart_of_few_colours_stays_png() {
    let img = image::RgbImage::from_fn(300, 200, |x, _| {
        if x < 150 {
            image::Rgb([200, 30, 30])
        } else {
            image::Rgb([255, 255, 255])
        }
    });
    let mut source = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut source), ImageFormat::WebP)
        .unwrap();
    let (encoded, bytes) = encode(&source).unwrap();
    assert!(encoded.name.ends_with(".png"), "{}", encoded.name);
    assert_eq!(
        image::guess_format(&bytes).unwrap(),
        ImageFormat::Png,
        "a WebP is converted"
    );
}

#[test]
fn a_gif_gives_its_first_frame() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame, Rgba, RgbaImage};
    let mut source = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut source);
        for colour in [[255, 0, 0, 255], [0, 0, 255, 255]] {
            let frame = Frame::from_parts(
                RgbaImage::from_pixel(30, 20, Rgba(colour)),
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            );
            encoder.encode_frame(frame).unwrap();
        }
    }
    let (encoded, bytes) = encode(&source).unwrap();
    assert_eq!((encoded.width, encoded.height), (30, 20));
    let first = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(first.get_pixel(5, 5).0, [255, 0, 0], "the first frame, red");
}

#[test]
fn heic_and_other_files_are_named_as_unreadable() {
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
    assert_eq!(encode(heic).unwrap_err(), PictureError::Heic);
    assert!(encode(b"%PDF-1.7")
        .unwrap_err()
        .to_string()
        .contains("JPEG, PNG"));
    let mut cut = photo(64, 64);
    cut.truncate(cut.len() / 3);
    assert!(encode(&cut).is_err());
    // Cut inside its picture data: the decoder alone would give a gray-bottomed picture.
    let mut cut = with_exif_orientation_6(&photo(400, 300));
    cut.truncate(cut.len() * 9 / 10);
    assert!(
        encode(&cut).unwrap_err().to_string().contains("cut off"),
        "a cut-off JPEG is refused"
    );
    let mut trailer = photo(64, 64);
    trailer.extend(b"\0\0\0\x18ftypmp42 a motion photo's video");
    assert!(encode(&trailer).is_ok(), "data after the end is allowed");
}

#[test]
fn the_cache_answers_without_decoding_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache {
        dir: dir.path().to_path_buf(),
        write: true,
    };
    let source = photo(100, 50);
    let first = prepare(&source, Some(&cache)).unwrap();
    assert!(dir.path().join(&first.name).is_file());
    assert_eq!(cached(&source, dir.path()), Some(first.clone()));
    let looked = Cache {
        write: false,
        ..cache
    };
    assert_eq!(prepare(&source, Some(&looked)).unwrap(), first);
}

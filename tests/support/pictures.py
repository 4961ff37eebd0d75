"""Pictures for tests/pictures.rs, made and read with Pillow (and python-docx).

usage:
  pictures.py photo OUT.jpg WIDTH HEIGHT ORIENTATION   a phone-like photo (noise over
      gradients) with EXIF: orientation, camera, GPS position; XMP; an ICC profile; a comment
  pictures.py chart OUT.png                            a bar chart of few colours
  pictures.py docx OUT.docx PICTURE ALT                a Word document showing PICTURE, alt text ALT
  pictures.py inspect FILE                             JSON: format, size, metadata found
"""
import io
import json
import sys

from PIL import Image, ImageCms, ImageDraw


def photo(out, width, height, orientation):
    noise = Image.effect_noise((width, height), 40).convert("L")
    grad = Image.linear_gradient("L").resize((width, height))
    r = Image.blend(noise, grad, 0.6)
    g = grad.transpose(Image.Transpose.ROTATE_90).resize((width, height))
    b = Image.blend(noise, grad.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 0.5)
    img = Image.merge("RGB", (r, g, b))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 15"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (35.0, 39.0, 29.0)
    gps[3] = "E"
    gps[4] = (139.0, 42.0, 3.0)
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="35,39.48N"/></rdf:RDF></x:xmpmeta>'
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img.save(out, "JPEG", quality=92, exif=exif, xmp=xmp, icc_profile=icc, comment=b"taken at home")


def chart(out):
    img = Image.new("RGB", (1600, 900), "white")
    d = ImageDraw.Draw(img)
    for i, h in enumerate([300, 520, 410, 700, 610]):
        d.rectangle([150 + i * 280, 850 - h, 330 + i * 280, 850], fill=(30, 90, 160))
    d.line([100, 850, 1550, 850], fill="black", width=4)
    img.save(out, "PNG")


def docx(out, picture, alt):
    from docx import Document
    from docx.shared import Cm

    doc = Document()
    doc.add_heading("養育費算定表の見方", level=1)
    doc.add_paragraph("算定表は、子の人数と年齢で表が分かれています。")
    doc.add_picture(picture, width=Cm(15))
    # python-docx gives no alt text: Word keeps it in wp:docPr/@descr.
    doc.inline_shapes[0]._inline.docPr.set("descr", alt)
    doc.add_paragraph("表の縦軸が義務者の年収、横軸が権利者の年収です。")
    doc.save(out)


def inspect(path):
    data = open(path, "rb").read()
    img = Image.open(io.BytesIO(data))
    exif = img.getexif()
    print(json.dumps({
        "format": img.format,
        "width": img.width,
        "height": img.height,
        "exif_tags": len(exif),
        "gps": len(exif.get_ifd(0x8825)),
        "info": sorted(k for k in img.info.keys() if k not in ("jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi")),
        "xmp": b"http://ns.adobe.com" in data or b"adobe:ns:meta" in data,
        "bytes": len(data),
    }))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "photo":
        photo(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "chart":
        chart(sys.argv[2])
    elif cmd == "docx":
        docx(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "inspect":
        inspect(sys.argv[2])

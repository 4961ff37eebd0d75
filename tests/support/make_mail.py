#!/usr/bin/env python3
"""Writes a mail message as a mail app would, with Python's `email` package, for the post by
email tests.

usage: make_mail.py OUT.eml --from ADDR --subject S [--message-id ID] [--references IDS]
                    [--auth "mx.example.jp; dmarc=pass ..."]... [--text BODY] [--html BODY]
                    [--attach PATH[=NAME]]... [--zip-bomb NAME]

--auth headers are written in the order given (the first is the topmost). --html without
--text makes an HTML-only message (as some phone mail apps send). --zip-bomb attaches a zip
whose one member inflates to 256 MiB of zeros, under NAME (e.g. bomb.docx).
"""
import argparse
import io
import mimetypes
import zipfile
from email.message import EmailMessage
from email.utils import formatdate

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--from", dest="sender", required=True)
p.add_argument("--to", default="posts@example.jp")
p.add_argument("--subject", required=True)
p.add_argument("--message-id")
p.add_argument("--references")
p.add_argument("--auth", action="append", default=[])
p.add_argument("--text")
p.add_argument("--html")
p.add_argument("--attach", action="append", default=[])
p.add_argument("--zip-bomb")
a = p.parse_args()

m = EmailMessage()
for value in a.auth:
    m["Authentication-Results"] = value
m["From"] = a.sender
m["To"] = a.to
m["Subject"] = a.subject
m["Date"] = formatdate(localtime=True)
if a.message_id:
    m["Message-ID"] = a.message_id
if a.references:
    m["References"] = a.references
    m["In-Reply-To"] = a.references.split()[-1]
if a.text is not None:
    m.set_content(a.text)
    if a.html is not None:
        m.add_alternative(a.html, subtype="html")
elif a.html is not None:
    m.set_content(a.html, subtype="html")
else:
    m.set_content("")

for spec in a.attach:
    path, _, name = spec.partition("=")
    name = name or path.rsplit("/", 1)[-1]
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    maintype, subtype = ctype.split("/", 1)
    with open(path, "rb") as f:
        m.add_attachment(f.read(), maintype=maintype, subtype=subtype, filename=name)

if a.zip_bomb:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>')
        with z.open("word/document.xml", "w") as w:
            chunk = b"\0" * (1 << 20)
            for _ in range(256):
                w.write(chunk)
    m.add_attachment(buf.getvalue(), maintype="application",
                     subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
                     filename=a.zip_bomb)

with open(a.out, "wb") as f:
    f.write(bytes(m))

#!/usr/bin/env python3
"""Signs a message with dkimpy (an implementation we did not write), as a sender's server would.

Usage: dkim_sign.py PRIVATE_KEY.pem DOMAIN SELECTOR [--length] < message > signed message
relaxed/relaxed, rsa-sha256, signing From, To, Subject, Date and Message-ID; --length adds an
l= tag (the signature then covers only the body as it was).
"""
import sys

import dkim

key_file, domain, selector = sys.argv[1:4]
with open(key_file, "rb") as f:
    key = f.read()
message = sys.stdin.buffer.read()
signature = dkim.sign(
    message,
    selector.encode(),
    domain.encode(),
    key,
    canonicalize=(b"relaxed", b"relaxed"),
    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    length="--length" in sys.argv[4:],
)
sys.stdout.buffer.write(signature + message)

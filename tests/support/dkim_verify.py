#!/usr/bin/env python3
"""Verifies DKIM signatures with dkimpy (an implementation we did not write).

Usage: dkim_verify.py PUBLIC_KEY_B64 MESSAGE...   Prints "<file> ok <h=>" or "<file> FAIL" per message;
the DNS lookup of the selector is answered from PUBLIC_KEY_B64 (a stub, no network).
"""
import sys

import dkim

pub = sys.argv[1].encode()


def dns(name, timeout=5):
    return b"v=DKIM1; k=rsa; p=" + pub


for path in sys.argv[2:]:
    with open(path, "rb") as f:
        msg = f.read()
    d = dkim.DKIM(msg)
    ok = d.verify(dnsfunc=dns)
    # h= as a verifier reads it: names without letter case, folding whitespace dropped.
    signed = b"".join(d.signature_fields.get(b"h", b"").split()).decode().lower()
    print(path, "ok" if ok else "FAIL", signed if ok else "")

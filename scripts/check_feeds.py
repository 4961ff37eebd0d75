#!/usr/bin/env python3
"""Reads feeds with feedparser (an independent parser) and prints what it sees as JSON.

Usage: check_feeds.py FEED...  ->  {"FEED": {"bozo": bool, "version": str, "entries": [...]}}
"""
import json
import sys

import feedparser

out = {}
for path in sys.argv[1:]:
    d = feedparser.parse(path)
    out[path] = {
        "bozo": bool(d.bozo),
        "bozo_exception": str(d.get("bozo_exception", "")),
        "version": d.version,
        "title": d.feed.get("title"),
        "image": (d.feed.get("image") or {}).get("href"),
        "icon": d.feed.get("icon"),
        "links": [[l.get("rel"), l.get("href")] for l in d.feed.get("links", [])],
        "entries": [
            {
                "id": e.get("id"),
                "title": e.get("title"),
                "link": e.get("link"),
                "published": e.get("published"),
                "updated": e.get("updated"),
                "content": (e.get("content") or [{}])[0].get("value", ""),
            }
            for e in d.entries
        ],
    }
json.dump(out, sys.stdout, ensure_ascii=False)

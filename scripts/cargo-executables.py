#!/usr/bin/env python3
"""Reads `cargo ... --message-format=json` on stdin and prints the path of every executable it
built whose target is of KIND (bench, test, bin, example), or, with NAME, only those of that
target name.

    cargo test --no-run --message-format=json | scripts/cargo-executables.py test crafted
"""
import json
import sys

if len(sys.argv) not in (2, 3):
    sys.exit(__doc__)
kind = sys.argv[1]
name = sys.argv[2] if len(sys.argv) == 3 else None
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    target = m["target"]
    if kind in target["kind"] and (name is None or target["name"] == name):
        print(m["executable"])

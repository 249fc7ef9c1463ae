#!/usr/bin/env python3
"""Structural checks of `kiln compile --emit=dot` and `--report-format=svg`.

  check_pictures.py dot FILE.dot FILE.kir   the digraph is well formed: braces
      balance, every edge's ends are declared nodes, every node is declared
      once, and there is one `subgraph cluster_N` per `fusion` of the same
      compile's .kir (N = 0, 1, ...); when Graphviz's `dot` is installed it
      must also render the file.
  check_pictures.py svg FILE.svg FILE.json  the picture is well-formed XML with
      one <rect class="buffer"> per value of the JSON memory report that has a
      non-empty arena slice, each titled with that value's name, size, offset
      and live range.
"""
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET


def fail(message):
    print("check_pictures: " + message, file=sys.stderr)
    sys.exit(1)


def check_dot(dot_path, kir_path):
    text = open(dot_path).read()
    if not text.startswith("digraph "):
        fail("not a digraph")
    depth = 0
    for c in re.sub(r'"(\\.|[^"\\])*"', '""', text):  # braces outside strings
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth < 0:
            fail("unbalanced '}'")
    if depth != 0:
        fail("unbalanced '{'")
    declared = re.findall(r"^\s*(\w+) \[", text, re.M)
    if len(declared) != len(set(declared)):
        fail("a node is declared twice")
    declared = set(declared) - {"node", "edge"}
    edges = re.findall(r"^\s*(\w+) -> (\w+) \[", text, re.M)
    if not edges:
        fail("no edges")
    for a, b in edges:
        if a not in declared or b not in declared:
            fail("edge %s -> %s has an undeclared end" % (a, b))
    clusters = re.findall(r"subgraph cluster_(\d+) \{", text)
    fusions = len(re.findall(r"= fusion ", open(kir_path).read()))
    if [int(n) for n in clusters] != list(range(fusions)):
        fail("clusters %s for %d fusions" % (clusters, fusions))
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg", dot_path], capture_output=True, text=True)
        if svg.returncode != 0:
            fail("dot rejects the file: " + svg.stderr.strip())
        ET.fromstring(svg.stdout)
    print("dot ok: %d nodes, %d edges, %d clusters" % (len(declared), len(edges), len(clusters)))


def check_svg(svg_path, json_path):
    root = ET.parse(svg_path).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    if root.tag != ns + "svg":
        fail("the root element is %s" % root.tag)
    rects = [r for r in root.iter(ns + "rect") if r.get("class") == "buffer"]
    report = json.load(open(json_path))
    (graph,) = report.values()
    memory = graph["memory"]
    arena = [b for b in memory["buffers"] if b["buffer"] == "arena" and b["size"] > 0]
    if len(rects) != len(arena):
        fail("%d buffer rectangles for %d arena values" % (len(rects), len(arena)))
    end = memory["nodes"]
    for rect, b in zip(rects, arena):
        if rect.get("data-value") != b["value"]:
            fail("rectangle of %s where %s was expected" % (rect.get("data-value"), b["value"]))
        last = "end" if b["last"] == end else str(b["last"])
        want = "%s (%s): %d bytes at offset %d, live %d..%s" % (
            b["value"], b["op"], b["size"], b["offset"], b["first"], last)
        title = rect.find(ns + "title")
        if title is None or title.text != want:
            fail("title %r, expected %r" % (None if title is None else title.text, want))
        if float(rect.get("width")) <= 0 or float(rect.get("height")) <= 0:
            fail("an empty rectangle for " + b["value"])
    print("svg ok: %d buffers" % len(rects))


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("dot", "svg"):
        fail("usage: check_pictures.py dot FILE.dot FILE.kir | svg FILE.svg FILE.json")
    (check_dot if sys.argv[1] == "dot" else check_svg)(sys.argv[2], sys.argv[3])

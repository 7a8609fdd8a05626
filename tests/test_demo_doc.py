"""docs/demo.md shows what `make demo` wrote: its table is misc/demo_results.md (the results.md
of a run, committed), and the reading's figures are that table's."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- misc/demo_results.md -->", "<!-- end of misc/demo_results.md -->"


def read(*path):
    with open(os.path.join(ROOT, *path)) as f:
        return f.read()


def rows(table):
    """{method: (dim, [R@1, R@2, R@4, R@8], epochs or None)} of the results table."""
    out = {}
    for m in re.finditer(r"^\| ([^|]+?) \| [^|]+ \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| "
                         r"(?:(\d+) \(\d+\)|-) \| \d+ \|$", table, re.M):
        out[m[1]] = (int(m[2]), [float(m[i]) for i in range(3, 7)], int(m[7]) if m[7] else None)
    return out


def test_the_docs_show_the_committed_results_verbatim():
    doc, results = read("docs", "demo.md"), read("misc", "demo_results.md")
    assert doc.count(BEGIN) == 1 and doc.count(END) == 1
    shown = doc.split(BEGIN)[1].split(END)[0].strip()
    assert shown == results.strip()
    assert "Measured on " in results   # the machine, which a patience stop depends on


def test_the_reading_quotes_the_table():
    doc, table = read("docs", "demo.md"), rows(read("misc", "demo_results.md"))
    assert len(table) == 5
    reading = doc.split(END)[1]
    source = next(v for k, v in table.items() if k.startswith("source:"))
    pixels = table["raw pixels (32x32)"]
    relaxed = table["target: Relaxed_Contra from the source"]
    alone = table["target: Proxy-Anchor alone (ImageNet init.)"]
    ratio = f"{source[1][0] / pixels[1][0]:.2f}x"
    for quoted in (ratio, f"{source[1][0]:.1f} against {pixels[1][0]:.1f}", f"({relaxed[1][0]:.1f})",
                   f"({alone[1][0]:.1f})", f"{source[2]}, {relaxed[2]} and {alone[2]} epochs"):
        assert quoted in reading, quoted

"""The --html report: one well-formed, self-contained page holding the tables and the chart,
rendered by headless Chromium with every network name unresolvable."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from tests.support.browser import screenshot
from tests.wave_proxy.calibrate.traces import FUSION_RUN, S3_RUN, Row, trace
from wave_proxy.calibrate.chart import COLOURS
from wave_proxy.calibrate.compare import compare
from wave_proxy.calibrate.report import html_report
from wave_proxy.calibrate.trace import parse_trace

VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "source", "wbr"}
XML_NAMESPACES = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")


class Structure(HTMLParser):
    """Checks every element is closed in order, and collects what could load a resource."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.references: list[str] = []
        self.tags: list[str] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._attributes(attrs)
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self._attributes(attrs)

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data):
        if self.open and self.open[-1] == "style":
            self.styles.append(data)

    def _attributes(self, attrs):
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
                self.references.append(value or "")
            if name == "style":
                self.styles.append(value or "")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    s3 = [*S3_RUN, Row("REGION (4)", 67, 50, 40, status="FAILED")]
    comparison = compare(parse_trace(trace(s3), "s3.txt"), parse_trace(trace(FUSION_RUN), "f.txt"))
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(html_report(comparison), encoding="utf-8")
    return path


def test_the_page_is_well_formed(page):
    parser = Structure()
    parser.feed(page.read_text())
    parser.close()
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert parser.problems == [] and parser.open == []


def test_the_page_holds_both_tables_and_the_chart(page):
    parser = Structure()
    parser.feed(page.read_text())
    assert parser.tags.count("table") == 2
    assert parser.tags.count("svg") == 1
    text = page.read_text()
    chart = text[text.index("<svg") : text.index("</svg>")]
    for row in [*S3_RUN, *FUSION_RUN]:
        assert f"<!-- {row.name} -->" in chart  # a lane label per task of both runs


def test_the_page_references_no_other_resource(page):
    parser = Structure()
    parser.feed(page.read_text())
    outside = [ref for ref in parser.references if not ref.startswith("#")]
    assert outside == []
    urls = [url for style in parser.styles for url in re.findall(r"url\(([^)]*)\)", style)]
    assert [url for url in urls if not url.startswith("#")] == []  # hatches: in-page patterns
    assert not [style for style in parser.styles if "@import" in style]
    text = page.read_text()
    for namespace in XML_NAMESPACES:  # names, not fetched
        text = text.replace(namespace, "")
    assert "http:" not in text and "https:" not in text and "<script" not in text


@pytest.mark.e2e  # headless chromium
def test_chromium_renders_the_chart_with_no_network(page, tmp_path):
    shot = screenshot(page, tmp_path / "shot.png")
    colours = {colour for _, colour in Image.open(shot).convert("RGB").getcolors(1 << 20)}
    for hex_colour in COLOURS.values():  # the solid bars of both runs are on screen
        assert tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)) in colours

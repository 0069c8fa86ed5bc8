"""Discovery's parsers: app strings, discovery pages (HTML with meta tags) and templates, random
and mutated. Parsing a page never fails (a page without usable tags has none); an app string is
an App or an AppStringError."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sandbox.dist import discovery as d
from sandbox.image.types import App

from .conftest import budget
from .kit import byte_mutation, only_kit_errors

PAGE = (b'<!DOCTYPE html><html><head><title>x</title>'
        b'<meta name="ac-discovery" content="example.com https://example.com/{name}-{version}-{os}-{arch}.{ext}">'
        b'<meta name="ac-discovery" content="example.com/app https://mirror.example.com/{name}.{ext}?v={version}">'
        b"<meta name='ac-discovery-pubkeys' content='example.com https://example.com/pubkeys.gpg'>"
        b'<meta name="ac-discovery" content="example.com">'
        b"</head><body><!-- <meta name=\"ac-discovery\" content=\"hidden x\"> --></body></html>")
APP = App("example.com/app", {"version": "1.0.0", "os": "linux", "arch": "amd64"})

HTML_BITS = ["<meta", "name=ac-discovery", "content=\"", "{", "}", "{ext}", "{name}", "<!--", "-->",
             "<![CDATA[", "]]>", "&amp;", "&#x110000;", "&#99999999999;", "<", ">", "'", "\"", " ",
             "<![if !IE]>", "<!DOCTYPE", "<?xml", "</", "\x00", "\udcff"]


def parse(page: bytes | str) -> None:
    tags = d.parse_meta(page)                     # never raises
    cands = d.expand_templates(APP, tags)
    for c in cands:            # an endpoint is a fully rendered template (discovery.go's rule:
        if c.endpoint is not None:   # no "{...}" pair left; a lone "{" is just a character)
            assert not d.TEMPLATE_VAR.search(c.endpoint.aci), c


@budget(150)
@given(st.data())
def test_mutated_pages(data: st.DataObject) -> None:
    parse(data.draw(byte_mutation(PAGE, max_edits=8)))


@budget(100)
@given(st.lists(st.sampled_from(HTML_BITS) | st.text(max_size=8), max_size=40).map("".join))
def test_random_markup(page: str) -> None:
    parse(page)


@budget(200)
@given(st.text(max_size=60) | st.sampled_from(["a:b:c", "x,y", "example.com/app:1.0,os=linux",
                                               ",=", "a,b=", ":", "A/B", "a" * 300]))
def test_app_strings(text: str) -> None:
    got = only_kit_errors(d.parse_app, text, show=text)
    if isinstance(got, App):
        only_kit_errors(got.with_platform_defaults)
        d.template_variables(got)

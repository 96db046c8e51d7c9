"""Hostile text for every field that reaches a browsing page.

Each payload, if it survived into a page, would run script: through a tag, an
event-handler attribute, or a ``javascript:``/``data:`` URL (spelt with entities,
tabs, case and spaces, as browsers forgive). ``alert`` is the tell: the browser
test fails on any dialog.
"""

from __future__ import annotations

from tests.builders import Meta

__all__ = ["MARKDOWN", "PLAIN", "PROJECT_FIELDS", "RST", "YANK_REASON", "metadata"]

SCRIPT = "<script>alert('xss-script')</script>"
IMG = "<img src=x onerror=alert('xss-img')>"
SVG = "<svg onload=alert('xss-svg')></svg>"
# A data: URL holding a page with script (base64 of <script>alert(1)</script>).
DATA_URL = "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="

# Markdown (and GFM): raw HTML, links and images with script URLs.
MARKDOWN = f"""# Hostile README

{SCRIPT}

{IMG}

{SVG}

<a href="javascript:alert('xss-a')">raw link</a>
<a href="&#106;avascript:alert('xss-entity')">entity link</a>
<a href="java&#x09;script:alert('xss-tab')">tab link</a>
<a href=" JaVaScRiPt:alert('xss-case')">case link</a>
<iframe src="javascript:alert('xss-iframe')"></iframe>
<object data="javascript:alert('xss-object')"></object>
<embed src="javascript:alert('xss-embed')">
<details open ontoggle="alert('xss-details')"><summary>s</summary>d</details>
<form action="javascript:alert('xss-form')"><button formaction="javascript:alert(1)">go</button></form>
<math><mi xlink:href="javascript:alert('xss-math')">x</mi></math>
<style>body {{ display: none }}</style>
<base href="javascript:alert('xss-base')//">
<meta http-equiv="refresh" content="0;url=javascript:alert('xss-meta')">
<p style="background:url(javascript:alert('xss-style'))">styled</p>

[md link](javascript:alert('xss-md'))
[md data]({DATA_URL})
![md image](javascript:alert('xss-md-img'))
<javascript:alert('xss-autolink')>

```html
{SCRIPT}
```
"""

RST = f"""Hostile README
==============

.. raw:: html

   {SCRIPT}

`rst link <javascript:alert('xss-rst')>`_

`rst data <{DATA_URL}>`_

.. image:: javascript:alert('xss-rst-img')

.. |sub| image:: {DATA_URL}

Inline {SCRIPT} and {IMG} as text.

.. code:: html

   {SCRIPT}
"""

# Plain text: shown as text, never as markup.
PLAIN = f"{SCRIPT}\n{IMG}\n<a href=\"javascript:alert('xss-plain')\">x</a>\n"

# Fields of the core metadata that pages show, each hostile.
PROJECT_FIELDS: list[tuple[str, str]] = [
    ("Keywords", f"{IMG},javascript:alert('xss-kw'),{SCRIPT}"),
    ("Home-page", "javascript:alert('xss-home')"),
    ("Download-URL", DATA_URL),
    ("Project-URL", "Documentation, javascript:alert('xss-doc')"),
    ("Project-URL", "Tab, java\tscript:alert('xss-url-tab')"),
    ("Project-URL", f"{SCRIPT}, https://example.invalid/\"><script>alert('xss-q')</script>"),
    ("Project-URL", f"Data, {DATA_URL}"),
    ("Author", SCRIPT),
    ("Author-email", f'"{IMG}" <author@example.invalid>'),
    ("Maintainer", IMG),
    ("Maintainer-email", "x@example.invalid\"><svg onload=alert('xss-me')>"),
    ("License", SCRIPT),
    ("Classifier", f"Private :: {SCRIPT}"),
    ("Classifier", f"Private :: {IMG}"),
]

SUMMARY = f"{SCRIPT}\"'><img src=x onerror=alert('xss-summary')>"

YANK_REASON = f"{SCRIPT}{IMG}javascript:alert('xss-yank')"


def metadata(name: str, version: str, content_type: str | None, body: str) -> bytes:
    """Core metadata with every hostile field and ``body`` as the description."""
    extra = list(PROJECT_FIELDS)
    if content_type is not None:
        extra.append(("Description-Content-Type", content_type))
    head = Meta(name, version, summary=SUMMARY, metadata_version="2.1", extra=extra).render()
    return head + body.encode()

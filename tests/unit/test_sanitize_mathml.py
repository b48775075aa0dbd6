"""MathML through the item sanitizer: the presentation elements and their layout attributes
stay; links, events, foreign content and the known namespace-confusion payloads do not."""

from __future__ import annotations

import pytest

from app.bank.sanitize import clean_html


def test_a_formula_survives_unchanged():
    formula = ('<p>Hitung <math display="block"><mrow><mfrac><mn>1</mn><mn>2</mn></mfrac>'
               '<mo stretchy="false">+</mo><msqrt><mi mathvariant="italic">x</mi></msqrt>'
               '<msup><mi>e</mi><mn>2</mn></msup></mrow></math></p>')
    assert clean_html(formula) == formula
    assert clean_html(clean_html(formula)) == formula  # idempotent


@pytest.mark.parametrize("payload", [
    '<math href="javascript:alert(1)"><mi>x</mi></math>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<math><mi onclick="alert(1)">x</mi></math>',
    '<math><maction actiontype="statusline"><mi>x</mi><mtext>y</mtext></maction></math>',
    '<math><annotation-xml encoding="text/html"><img src="x" onerror="alert(1)"></annotation-xml>'
    '</math>',
    '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
    '<math><mi><style>*{color:red}</style></mi><script>alert(1)</script></math>',
    '<svg><math><mi>x</mi></math></svg>',
])
def test_nothing_active_gets_through(payload):
    cleaned = clean_html(payload).lower()
    for active in ("javascript", "onclick", "onerror", "<script", "<style", "href", "<svg",
                   "maction", "annotation", "mglyph", "<img"):
        assert active not in cleaned, (payload, cleaned)


def test_ruby_and_text_direction_are_kept_safely():
    kept = ('<p dir="rtl">مرحبا</p><p><ruby>漢<rp>(</rp><rt>kan</rt><rp>)</rp></ruby></p>'
            '<span dir="auto">x</span>')
    assert clean_html(kept) == kept
    assert clean_html('<p dir="javascript:x">y</p>') == "<p>y</p>"  # only ltr, rtl, auto
    assert clean_html('<img dir="rtl" src="media/a.png">') == '<img src="media/a.png">'

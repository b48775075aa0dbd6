"""Response processing written out in full (as TAO and many authoring tools write it) is run
for every possible response; the item is imported the way it actually scores, or refused with
the element that cannot be run."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from app.bank.qti import parse_qti_files

SINGLE = (Path(__file__).resolve().parents[1] / "fixtures" / "qti" / "qti21_single.xml") \
    .read_bytes()
TEMPLATE = (b'<responseProcessing template="http://www.imsglobal.org/question/qti_v2p1/'
            b'rptemplates/match_correct"/>')


def with_processing(tree: bytes, *, multiple: bool = False, correct: bytes = b"B") -> bytes:
    data = SINGLE.replace(TEMPLATE, b"<responseProcessing>" + tree + b"</responseProcessing>")
    data = data.replace(b"<value>B</value>", b"".join(
        b"<value>" + v + b"</value>" for v in correct.split(b",")))
    if multiple:
        data = data.replace(b'cardinality="single"', b'cardinality="multiple"')
    return data


def parsed(data: bytes):
    return parse_qti_files({"a.xml": data}, source="a.xml", default_construct="potensi.numerik",
                           skip_unsupported=False)


def score(value: str) -> bytes:
    return (b'<setOutcomeValue identifier="SCORE"><baseValue baseType="float">'
            + value.encode() + b"</baseValue></setOutcomeValue>")


MATCH = b'<match><variable identifier="RESPONSE"/><correct identifier="RESPONSE"/></match>'
NULL = b'<isNull><variable identifier="RESPONSE"/></isNull>'
# The usual tree: blank -> 0, correct -> 2, else 0 (a nested condition, as TAO writes it).
USUAL = (b"<responseCondition><responseIf>" + NULL + score("0") + b"</responseIf><responseElse>"
         b"<responseCondition><responseIf>" + MATCH + score("2") + b"</responseIf>"
         b"<responseElse>" + score("0") + b"</responseElse></responseCondition>"
         b"</responseElse></responseCondition>")


def test_the_usual_tree_is_a_keyed_item():
    result = parsed(with_processing(USUAL))
    assert result.problems == []
    [item] = result.items
    assert item.kind == "single" and [o.ident for o in item.options if o.is_key] == ["B"]


def test_else_if_points_per_choice_are_a_weighted_item():
    def member(ident: bytes) -> bytes:
        return (b'<match><variable identifier="RESPONSE"/><baseValue baseType="identifier">'
                + ident + b"</baseValue></match>")
    tree = (b"<responseCondition><responseIf>" + member(b"B") + score("3") + b"</responseIf>"
            b"<responseElseIf>" + member(b"C") + score("1") + b"</responseElseIf>"
            b"<responseElse>" + score("0") + b"</responseElse></responseCondition>")
    [item] = parsed(with_processing(tree)).items
    assert item.kind == "weighted"
    assert {o.ident: o.weight for o in item.options} == {
        "A": Decimal(0), "B": Decimal(3), "C": Decimal(1), "D": Decimal(0)}


def test_an_inverted_tree_is_imported_as_it_scores_not_as_match_correct():
    # Blank 0, right answer 0, any other 1: by its element names alone it looked like
    # match_correct and was imported as a keyed item scoring the right answer.
    tree = (b"<responseCondition><responseIf>" + NULL + score("0") + b"</responseIf>"
            b"<responseElseIf>" + MATCH + score("0") + b"</responseElseIf>"
            b"<responseElse>" + score("1") + b"</responseElse></responseCondition>")
    [item] = parsed(with_processing(tree)).items
    assert item.kind == "weighted" and {o.ident for o in item.options if o.weight} == {
        "A", "C", "D"}


def test_a_multiple_response_match_is_all_or_nothing():
    tree = (b"<responseCondition><responseIf>" + MATCH + score("1") + b"</responseIf>"
            b"<responseElse>" + score("0") + b"</responseElse></responseCondition>")
    data = with_processing(tree, multiple=True, correct=b"A,C").replace(
        b'maxChoices="1"', b'maxChoices="0"')
    [item] = parsed(data).items
    assert item.kind == "multiple" and item.scoring["exact"] is True
    assert {o.ident for o in item.options if o.is_key} == {"A", "C"}


def test_what_cannot_be_run_is_named():
    tree = (b"<responseCondition><responseIf>" + MATCH + b'<setOutcomeValue identifier="SCORE">'
            b'<customOperator class="x"/></setOutcomeValue></responseIf></responseCondition>')
    result = parsed(with_processing(tree))
    [problem] = result.problems
    assert problem.location.endswith("/setOutcomeValue/customOperator")
    assert "expression <customOperator>" in problem.message and result.items == []
    # A blank that earns points cannot be scored as CACT scores a blank (0).
    blank = (b"<responseCondition><responseIf>" + NULL + score("1") + b"</responseIf>"
             b"<responseElse>" + score("0") + b"</responseElse></responseCondition>")
    [problem] = parsed(with_processing(blank)).problems
    assert "a blank response scores more or less than 0" in problem.message


def test_outcome_defaults_other_response_names_and_cc_templates():
    # SCORE set from a MAXSCORE outcome declared with a default, the response not called
    # RESPONSE, the correct set given as <multiple> of identifiers: a keyed item all the same.
    tree = (b'<responseCondition><responseIf><member><variable identifier="R_1"/>'
            b'<multiple><baseValue baseType="identifier">B</baseValue></multiple></member>'
            b'<setOutcomeValue identifier="SCORE"><variable identifier="MAXSCORE"/>'
            b"</setOutcomeValue></responseIf></responseCondition>")
    data = with_processing(tree).replace(b'identifier="RESPONSE"', b'identifier="R_1"') \
        .replace(b'responseIdentifier="RESPONSE"', b'responseIdentifier="R_1"').replace(
        b'<outcomeDeclaration identifier="SCORE" cardinality="single" baseType="float"/>',
        b'<outcomeDeclaration identifier="SCORE" cardinality="single" baseType="float"/>'
        b'<outcomeDeclaration identifier="MAXSCORE" cardinality="single" baseType="float">'
        b"<defaultValue><value>2</value></defaultValue></outcomeDeclaration>")
    result = parsed(data)
    assert result.problems == []
    assert [o.ident for o in result.items[0].options if o.is_key] == ["B"]
    # Common Cartridge's CC2_match is match_correct under another name.
    cc2 = SINGLE.replace(b"qti_v2p1/rptemplates/match_correct",
                         b"qti_v2p1/rptemplates/CC2_match")
    [item] = parsed(cc2).items
    assert item.kind == "single" and [o.ident for o in item.options if o.is_key] == ["B"]

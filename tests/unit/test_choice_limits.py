"""How many options a taker may tick on a multiple-response item: read from QTI
(maxChoices/minChoices) and from a CACT bank (scoring.max_choices/min_choices), kept apart from
the score bounds (scoring.min/max), written back by the QTI export, and read by delivery."""

from __future__ import annotations

import pytest
import yaml

from app.bank.formats import parse_bank_file
from app.bank.qti import export_qti3_package, parse_qti_files
from app.delivery.saving import choice_bounds
from tests.factories import bank_doc
from tests.unit.test_qti import fixture, unzip


def qti_with(**attributes: str) -> bytes:
    text = fixture("qti22_multiple.xml").decode()
    extra = " ".join(f'{k}="{v}"' for k, v in attributes.items())
    return text.replace('shuffle="false" maxChoices="0"', f'shuffle="false" {extra}').encode()


def read_qti(data: bytes):
    result = parse_qti_files({"item.xml": data}, source="item.xml",
                             default_construct="potensi.verbal", skip_unsupported=False)
    assert result.problems == [], result.problems
    return result.items[0]


def test_qti_max_and_min_choices_are_kept_beside_the_score_bounds():
    item = read_qti(qti_with(maxChoices="2", minChoices="1"))
    assert item.scoring == {"min": 0.0, "max": 4.0, "min_choices": 1, "max_choices": 2}
    # maxChoices="0" is QTI's "any number": no bound
    assert "max_choices" not in read_qti(qti_with(maxChoices="0")).scoring


def test_the_qti_export_writes_them_back():
    item = read_qti(qti_with(maxChoices="3", minChoices="2"))
    files = unzip(export_qti3_package([item], {}, title="Uji"))
    xml = files["items/VERB-010.xml"].decode()
    assert 'max-choices="3"' in xml and 'min-choices="2"' in xml
    again = parse_qti_files(files, source="export.zip", default_construct=None,
                            skip_unsupported=False).items[0]
    assert again.scoring == item.scoring


def test_a_cact_bank_names_them_in_the_items_scoring():
    doc = bank_doc()
    multiple = next(i for i in doc["items"] if i["kind"] == "multiple")
    multiple["scoring"] = {"min": 0, "max": 5, "max_choices": 2, "min_choices": 1}
    parsed, problems = parse_bank_file(yaml.safe_dump(doc), source="bank.yaml")
    assert problems == []
    item = next(i for i in parsed.items if i.kind == "multiple")
    assert item.scoring == {"min": 0.0, "max": 5.0, "min_choices": 1, "max_choices": 2}
    multiple["scoring"] = {"max_choices": 1.5}
    _, problems = parse_bank_file(yaml.safe_dump(doc), source="bank.yaml")
    assert [p.key for p in problems] == ["field_not_whole"]


@pytest.mark.parametrize(("scoring", "bounds"), [
    ({}, (None, None)),
    (None, (None, None)),
    ({"min": 0, "max": 5}, (None, None)),  # score bounds are not choice bounds
    ({"max_choices": 2}, (None, 2)),
    ({"min_choices": 2, "max_choices": 3}, (2, 3)),
    ({"min_choices": 4, "max_choices": 3}, (3, 3)),  # a minimum above the maximum is capped
    ({"max_choices": 0, "min_choices": -1}, (None, None)),
    ({"max_choices": True}, (None, None)),
    ({"max_choices": 2.5}, (None, None)),
])
def test_delivery_reads_only_sensible_bounds(scoring, bounds):
    assert choice_bounds(scoring) == bounds

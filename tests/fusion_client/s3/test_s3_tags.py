"""FUSION_TAGS parsing (Nextflow's format) and matching on object base names."""

from __future__ import annotations

import pytest

from fusion_client.s3.tags import TagRules

NEXTFLOW_DEFAULT = (
    "[.command.*|.exitcode|.fusion.*](nextflow.io/metadata=true),[*](nextflow.io/temporary=true)"
)


def test_nextflow_default_rules_parse():
    rules = TagRules.parse(NEXTFLOW_DEFAULT)
    assert [r.patterns for r in rules] == [(".command.*", ".exitcode", ".fusion.*"), ("*",)]
    assert [r.tags for r in rules] == [
        (("nextflow.io/metadata", "true"),),
        (("nextflow.io/temporary", "true"),),
    ]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("work/ab/cdef/.command.sh", "nextflow.io%2Fmetadata=true"),
        ("work/ab/cdef/.command.log", "nextflow.io%2Fmetadata=true"),
        ("work/ab/cdef/.exitcode", "nextflow.io%2Fmetadata=true"),
        ("work/ab/cdef/sample.bam", "nextflow.io%2Ftemporary=true"),
        ("work/ab/.command.sh/inner", "nextflow.io%2Ftemporary=true"),  # base name only
        (".exitcode", "nextflow.io%2Fmetadata=true"),
    ],
)
def test_first_matching_rule_gives_the_tagging_header(key, expected):
    assert TagRules.parse(NEXTFLOW_DEFAULT).header_for(key) == expected


def test_several_tags_in_one_rule_and_no_match_means_no_header():
    rules = TagRules.parse("[*.bam|*.bai](kind=alignment, team=genomics & stage=raw)")
    assert rules.tags_for("x/y.bam") == (
        ("kind", "alignment"),
        ("team", "genomics"),
        ("stage", "raw"),
    )
    assert rules.header_for("x/y.bai") == "kind=alignment&team=genomics&stage=raw"
    assert rules.header_for("x/y.txt") is None


def test_values_are_url_encoded_in_the_header():
    assert TagRules.parse("[*](owner=Jane Doe)").header_for("k") == "owner=Jane%20Doe"
    assert TagRules.parse("[*](expr=a=b)").header_for("k") == "expr=a%3Db"


def test_empty_setting_means_no_tags():
    assert TagRules.parse("") == ()
    assert TagRules.parse("   ").header_for("anything") is None


@pytest.mark.parametrize(
    "bad",
    [
        "*(a=b)",
        "[*](a=b",
        "[](a=b)",
        "[*](novalue)",
        "[*](a=b) junk",
        "[*](" + ",".join(f"k{i}=v" for i in range(11)) + ")",
        "[*](" + "k" * 129 + "=v)",
    ],
)
def test_malformed_rules_are_rejected_with_a_clear_message(bad):
    with pytest.raises(ValueError, match="FUSION_TAGS"):
        TagRules.parse(bad)

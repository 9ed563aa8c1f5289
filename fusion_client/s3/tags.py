"""Object tags from FUSION_TAGS, in Nextflow's format.

    [.command.*|.exitcode](nextflow.io/metadata=true),[*](nextflow.io/temporary=true)

A rule is `[GLOB|GLOB...](KEY=VALUE,KEY=VALUE...)` (tags inside the parentheses may also be
separated by `&`); rules are separated by commas. Globs (fnmatch: `*`, `?`, `[...]`) match
the object's base name. The FIRST matching rule gives the tags, so a catch-all `[*]` rule at
the end applies only to files no earlier rule claimed: Nextflow's task metadata files are kept
while everything else is marked temporary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import quote

_RULE = re.compile(r"\s*\[([^\]]*)\]\s*\(([^)]*)\)\s*(?:,|$)")


@dataclass(frozen=True, slots=True)
class TagRule:
    patterns: tuple[str, ...]
    tags: tuple[tuple[str, str], ...]


class TagRules(tuple[TagRule, ...]):
    """Parsed FUSION_TAGS; an empty value means no tagging."""

    @classmethod
    def parse(cls, text: str) -> TagRules:
        text = text.strip()
        rules: list[TagRule] = []
        pos = 0
        while pos < len(text):
            match = _RULE.match(text, pos)
            if match is None:
                raise ValueError(
                    f"FUSION_TAGS: expected `[glob|glob](key=value,...)` at character {pos}: "
                    f"{text[pos : pos + 40]!r}"
                )
            patterns = tuple(p.strip() for p in match.group(1).split("|") if p.strip())
            if not patterns:
                raise ValueError(f"FUSION_TAGS: empty pattern list at character {pos}")
            rules.append(TagRule(patterns, _parse_tags(match.group(2))))
            pos = match.end()
        return cls(rules)

    def tags_for(self, key: str) -> tuple[tuple[str, str], ...]:
        name = key.rstrip("/").rsplit("/", 1)[-1]
        for rule in self:
            if any(fnmatchcase(name, p) for p in rule.patterns):
                return rule.tags
        return ()

    def header_for(self, key: str) -> str | None:
        """The x-amz-tagging header value for `key`, or None when no rule matches."""
        tags = self.tags_for(key)
        if not tags:
            return None
        return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in tags)


def _parse_tags(text: str) -> tuple[tuple[str, str], ...]:
    tags: list[tuple[str, str]] = []
    for item in re.split(r"[,&]", text):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(f"FUSION_TAGS: tag {item!r} is not KEY=VALUE")
        if len(key) > 128 or len(value) > 256:
            raise ValueError(f"FUSION_TAGS: tag {item!r} exceeds S3's 128/256 character limits")
        tags.append((key, value))
    if len(tags) > 10:
        raise ValueError("FUSION_TAGS: S3 allows at most 10 tags per object")
    return tuple(tags)

"""The mutation list of tests/tools/mutate.py follows the code: every planted bug's old text
is still in its file exactly once, and its tests exist (the check itself runs for minutes and
is run by hand: `.venv/bin/python -m tests.tools.mutate`)."""

from tests.tools.mutate import MUTATIONS, stale


def test_every_mutation_still_applies():
    assert stale() == []


def test_mutations_are_named_uniquely_and_each_changes_something():
    assert len({m.name for m in MUTATIONS}) == len(MUTATIONS) >= 10
    assert all(m.edits and all(old != new for old, new in m.edits) for m in MUTATIONS)

"""The revision graph's server-side layout: rows, lanes, edges, at 300+ revisions."""

from __future__ import annotations

import re

from service.console.graph import LANE, ROW, layout
from service.services.revisions import RevisionInfo


def info(
    revision: str, *down: str, applied: bool = False, depends_on: tuple[str, ...] = ()
) -> RevisionInfo:
    return RevisionInfo(
        revision=revision,
        down_revisions=down,
        next_revisions=(),
        branch_labels=(),
        depends_on=depends_on,
        message=f"message of {revision}",
        description="",
        created_at=None,
        path=f"versions/{revision}.py",
        is_head=False,
        is_base=not down,
        is_branch_point=False,
        is_merge=len(down) > 1,
        applied=applied,
    )


def braided(count: int) -> list[RevisionInfo]:
    """Oldest first: a trunk where every tenth revision forks a branch merged five later."""
    revisions, trunk = [info("r0000")], "r0000"
    branch: str | None = None
    for i in range(1, count):
        name = f"r{i:04d}"
        if i % 10 == 1:
            branch = f"b{i:04d}"
            revisions.append(info(branch, trunk))
        if i % 10 == 6 and branch:
            revisions.append(info(name, trunk, branch))
            branch = None
        else:
            revisions.append(info(name, trunk))
        trunk = name
    return revisions


def test_a_linear_history_is_one_lane_with_one_edge_per_parent() -> None:
    oldest_first = [info("a"), info("b", "a"), info("c", "b")]
    drawn = layout(oldest_first[::-1], current={"b"})
    assert drawn.lanes == 1
    assert [n.info.revision for n in drawn.nodes] == ["c", "b", "a"]
    assert [n.y for n in drawn.nodes] == sorted(n.y for n in drawn.nodes)
    assert len(drawn.edges) == 2
    assert [n.current for n in drawn.nodes] == [False, True, False]


def test_a_branch_takes_a_second_lane_and_its_merge_joins_both() -> None:
    oldest_first = [info("base"), info("x", "base"), info("y", "base"), info("m", "x", "y")]
    drawn = layout(oldest_first[::-1], current=set())
    assert drawn.lanes == 2
    lanes = {n.info.revision: n.x for n in drawn.nodes}
    assert lanes["x"] != lanes["y"]
    assert lanes["m"] == lanes["base"]
    assert len(drawn.edges) == 4  # m-x, m-y, x-base, y-base


def test_only_edges_between_applied_revisions_are_marked_applied() -> None:
    oldest_first = [info("a", applied=True), info("b", "a", applied=True), info("c", "b")]
    drawn = layout(oldest_first[::-1], current={"b"})
    assert [edge.applied for edge in drawn.edges] == [False, True]  # c-b, b-a


def test_three_hundred_braided_revisions_stay_narrow_and_every_edge_ends_on_its_parent() -> None:
    oldest_first = braided(330)
    drawn = layout(oldest_first[::-1], current=set())
    assert len(drawn.nodes) == len(oldest_first) > 300
    assert drawn.lanes <= 3
    assert len(drawn.edges) == sum(len(i.down_revisions) for i in oldest_first)
    assert drawn.height == len(drawn.nodes) * ROW + 14
    ends = {(n.x, n.y) for n in drawn.nodes}
    for edge in drawn.edges:
        numbers = [int(v) for v in re.findall(r"-?\d+", edge.path)]
        assert (numbers[0], numbers[1]) in ends and (numbers[-2], numbers[-1]) in ends
        assert all(x % LANE == 14 % LANE for x in numbers[0::2])  # only on lane centres


def test_a_dependency_is_drawn_as_a_dependency_edge_beside_the_parents() -> None:
    oldest_first = [info("a"), info("x"), info("b", "a", depends_on=("x",))]
    drawn = layout(oldest_first[::-1], current=set())
    assert [edge.dependency for edge in drawn.edges] == [False, True]
    assert drawn.lanes == 2  # two bases, one lane each

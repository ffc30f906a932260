"""The revision graph laid out server-side: one row per revision, lanes like `git log --graph`."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from service.services.revisions import RevisionInfo

ROW, LANE, PAD = 28, 18, 14


@dataclass(frozen=True)
class Node:
    info: RevisionInfo
    x: int
    y: int
    current: bool  # recorded in the database's version table


@dataclass(frozen=True)
class Edge:
    path: str  # SVG path data, child to parent
    applied: bool  # both ends applied
    dependency: bool = False  # a depends_on link, not a down revision


@dataclass(frozen=True)
class Layout:
    nodes: list[Node]
    edges: list[Edge]
    lanes: int
    width: int
    height: int

    @property
    def text_x(self) -> int:
        return PAD + self.lanes * LANE + 8


def layout(newest_first: Sequence[RevisionInfo], current: Collection[str]) -> Layout:
    """Place `newest_first` (a topological order, heads first) in rows and lanes."""
    rows = {info.revision: row for row, info in enumerate(newest_first)}
    lane_of, routes = _lanes(newest_first, rows)
    nodes = [
        Node(info, _x(lane_of[info.revision]), _y(row), info.revision in current)
        for row, info in enumerate(newest_first)
    ]
    by_id = {node.info.revision: node for node in nodes}
    edges = [
        Edge(_route(by_id[child], by_id[parent], _x(lane)), _applied(by_id[child], by_id[parent]))
        for child, parent, lane in routes
    ]
    edges += [
        Edge(_dependency(by_id[info.revision], by_id[needed]), False, dependency=True)
        for info in newest_first
        for needed in info.depends_on
        if needed in by_id
    ]
    lanes = max(lane_of.values(), default=0) + 1
    return Layout(nodes, edges, lanes, _x(lanes) + 560, _y(len(nodes)))


def _lanes(
    newest_first: Sequence[RevisionInfo], rows: dict[str, int]
) -> tuple[dict[str, int], list[tuple[str, str, int]]]:
    """Each lane waits for one revision; a revision takes the first lane waiting for it
    and hands it to its first parent. Routes are (child, parent, lane it travels down)."""
    waiting: list[str | None] = []
    lane_of: dict[str, int] = {}
    routes: list[tuple[str, str, int]] = []
    for info in newest_first:
        mine = [i for i, wanted in enumerate(waiting) if wanted == info.revision]
        lane = mine[0] if mine else _free(waiting)
        for other in mine[1:]:
            waiting[other] = None  # branches meet here: their lanes end
        lane_of[info.revision] = lane
        parents = [p for p in info.down_revisions if p in rows]
        waiting[lane] = parents[0] if parents else None
        routes += [(info.revision, parents[0], lane)] if parents else []
        for parent in parents[1:]:  # a merge: each further parent in a lane of its own
            route = waiting.index(parent) if parent in waiting else _free(waiting)
            waiting[route] = parent
            routes.append((info.revision, parent, route))
    return lane_of, routes


def _applied(*ends: Node) -> bool:
    return all(end.info.applied for end in ends)


def _free(waiting: list[str | None]) -> int:
    if None in waiting:
        return waiting.index(None)
    waiting.append(None)
    return len(waiting) - 1


def _route(child: Node, parent: Node, lane_x: int) -> str:
    """Bend into the travel lane below the child, run down it, bend into the parent."""
    half = ROW // 2
    path = f"M{child.x} {child.y}"
    top = child.y + ROW
    if lane_x != child.x:
        path += f" C{child.x} {child.y + half} {lane_x} {child.y + half} {lane_x} {top}"
    bottom = parent.y - ROW if lane_x != parent.x else parent.y
    if bottom > top or (lane_x == parent.x and bottom >= top):
        path += f" L{lane_x} {bottom}"
    if lane_x != parent.x:
        start = max(bottom, top)
        path += f" C{lane_x} {start + half} {parent.x} {start + half} {parent.x} {parent.y}"
    return path


def _dependency(child: Node, needed: Node) -> str:
    """A bow to the left of the lanes, so it crosses none of the nodes between."""
    bow = max(min(child.x, needed.x) - LANE // 2, 2)
    return f"M{child.x} {child.y} C{bow} {child.y} {bow} {needed.y} {needed.x} {needed.y}"


def _x(lane: int) -> int:
    return PAD + lane * LANE


def _y(row: int) -> int:
    return PAD + row * ROW

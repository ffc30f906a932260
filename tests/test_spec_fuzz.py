"""The revision spec grammar against Alembic: whatever the grammar lets through, no 5xx.

Specs are built from the fixture projects' ids, partial ids, branch labels and symbols, with
relative steps of any length and stray '@', '+' and '-', plus any string of the grammar.
Each one goes to every endpoint that takes a spec. Resolving a spec is the same on every
backend, so the databases here are SQLite; bounded and derandomized so CI runs the same cases.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import hypothesis
import pytest
from flask.testing import FlaskClient
from hypothesis import strategies as st

from service.api.fields import REVISION_SPEC_PATTERN
from tests.helpers import FIXTURES, client_for, managed
from tests.test_revision_specs import stamp

# project: (where its database stands, its revision ids, its branch labels)
PROJECTS = {
    "linear": (("a2000002",), ("a1000001", "a2000002", "a3000003", "a4000004"), ()),
    "branched": (("bx100001",), ("b0000000", "bx100001", "by200002", "bm300003"), ()),
    "two_heads": (("tb100001", "ts100001"), ("t0000000", "tb200002", "ts100001"), ("billing",)),
    "depends_on": (("m1000000",), ("m0000000", "m1000000", "o1000000"), ("main", "other")),
}
GRAMMAR = re.compile(f"^{REVISION_SPEC_PATTERN}$")


def specs(ids: tuple[str, ...], labels: tuple[str, ...]) -> st.SearchStrategy[str]:
    names = (*ids, *(i[:3] for i in ids), *labels, "head", "heads", "base", "x")
    label = st.sampled_from(("", *(f"{n}@" for n in (*labels, *ids[:1], "x", "")), "@@"))
    symbol = st.sampled_from(("", *names))
    number = st.one_of(st.integers(0, 12), st.integers(0, 10**40))
    step = st.one_of(st.just(""), st.builds("{}{}".format, st.sampled_from("+-"), number))
    noise = st.text(alphabet="@+-_.", max_size=2)
    built = st.builds("".join, st.tuples(noise, label, symbol, step, noise))
    anything = st.from_regex(GRAMMAR, fullmatch=True)
    return st.one_of(built, built, anything).filter(lambda spec: GRAMMAR.match(spec) is not None)


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, FlaskClient]]:
    root = tmp_path_factory.mktemp("spec-fuzz")
    made = {}
    for name, (current, _ids, _labels) in PROJECTS.items():
        shutil.copytree(FIXTURES / name, root / name)
        url = f"sqlite:///{root / name}.db"
        stamp(url, *current)
        made[name] = client_for(managed("db", root / name / "alembic.ini", url))
    yield made


def requests(spec: str) -> list[tuple[str, str, dict[str, str] | None, dict[str, str] | None]]:
    base = "/api/v1/databases/db"
    reads = [
        {"to": spec},
        {"action": "downgrade", "to": spec},
        {"action": "stamp", "to": spec},
        {"from": spec},
    ]
    return [
        ("GET", f"{base}/pending", {"to": spec}, None),
        ("GET", f"{base}/revisions/{spec}", None, None),
        *(("GET", f"{base}/sql", query, None) for query in reads),
        *(
            ("POST", f"{base}/operations", None, {"action": action, "revision": spec})
            for action in ("upgrade", "downgrade", "stamp")
        ),
    ]


@pytest.mark.parametrize("project", list(PROJECTS))
def test_no_spec_of_the_grammar_makes_any_endpoint_answer_a_5xx(
    clients: dict[str, FlaskClient], project: str
) -> None:
    _current, ids, labels = PROJECTS[project]
    client = clients[project]

    @hypothesis.settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @hypothesis.given(spec=specs(ids, labels))
    def check(spec: str) -> None:
        for method, path, query, body in requests(spec):
            response = client.open(path, method=method, query_string=query, json=body)
            assert response.status_code < 500, (method, path, query, body, response.json)

    check()

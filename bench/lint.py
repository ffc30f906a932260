"""Benchmark: the lint of a warehouse-sized range costs less than rendering its preview.

Generates a linear project of N revisions after a base revision (each creates a table, then
adds, indexes, constrains and retypes a column of the existing `account` table: four findings),
renders the upgrade r0:heads preview for PostgreSQL through the project's runner, and times the
lint of that preview. Runs offline: no database server is needed.

    .venv/bin/python bench/lint.py --revisions 300 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.secrets import Secret  # noqa: E402
from service.services.previews import preview_cache, preview_sql  # noqa: E402
from service.services.registry import Registry  # noqa: E402
from service.services.safety.lint import lint_preview  # noqa: E402
from service.settings import ManagedDatabase, Settings  # noqa: E402
from tests.projects import write_project  # noqa: E402


def body(index: int) -> str:
    """A revision that creates a table and changes the existing `account` (findings)."""
    return "\n".join(
        (
            f'op.create_table("t{index}", sa.Column("id", sa.Integer, primary_key=True))',
            f'op.add_column("account", sa.Column("c{index}", sa.Integer, nullable=False))',
            f'op.create_index("ix_c{index}", "account", ["c{index}"])',
            f'op.create_foreign_key("fk_{index}", "account", "t{index}", ["c{index}"], ["id"])',
            f'op.alter_column("account", "c{index}", type_=sa.BigInteger)',
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revisions", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ini = write_project(Path(tmp) / "warehouse", *(body(i) for i in range(args.revisions)))
        database = ManagedDatabase(
            name="warehouse",
            url=Secret(f"postgresql://bench@127.0.0.1:1/{Path(tmp).name}"),
            alembic_config=ini,
            lock_timeout="5s",
        )
        registry = Registry(Settings(databases=(database,), script_rescan_seconds=3600))
        try:
            registry.get("warehouse").graph()  # the runner is up and the graph exported
            render, lint = [], []
            for _ in range(args.runs):
                cache = preview_cache(256 * 1024 * 1024)  # cold: each run renders again
                started = time.perf_counter()
                preview = preview_sql(registry, cache, "warehouse", from_="r0")
                render.append(time.perf_counter() - started)
                started = time.perf_counter()
                report = lint_preview(registry.get("warehouse"), preview)
                lint.append(time.perf_counter() - started)
        finally:
            registry.close()
    print(
        f"{args.revisions} revisions, {preview.statement_count} statements, "
        f"{len(preview.sql) // 1024} KiB of SQL, {len(report.findings)} findings"
    )
    print(f"preview render (median of {args.runs}): {statistics.median(render) * 1000:.0f} ms")
    print(f"lint (median of {args.runs}):           {statistics.median(lint) * 1000:.0f} ms")
    ratio = statistics.median(lint) / statistics.median(render)
    print(f"lint / render: {ratio:.2f} (goal: below 1)")
    sys.exit(0 if ratio < 1 else 1)


if __name__ == "__main__":
    main()

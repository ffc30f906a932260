"""Render one preview through the API in a fresh process: `python -m tests.render_preview`.

Through a merge point Alembic's text depends on the hash seed; `migctl serve` runs with
PYTHONHASHSEED=0, and the byte-for-byte tests compare both sides under that seed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.helpers import client_for, managed


def main() -> None:
    ini, url, query = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    client = client_for(managed("db", Path(ini), url))
    response = client.get("/api/v1/databases/db/sql", query_string=query)
    print(json.dumps({"status": response.status_code, "body": response.json}))


if __name__ == "__main__":
    main()

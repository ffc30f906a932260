"""The Idempotency-Key a command sends unless given one: a retried pipeline never queues twice."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

# Variables that name one run of a pipeline, the same when a step or job is retried.
CI_RUN_VARIABLES = (
    "GITHUB_RUN_ID",  # GitHub Actions ("Re-run jobs" keeps it)
    "CI_PIPELINE_ID",  # GitLab CI (retried jobs keep it)
    "BUILDKITE_BUILD_ID",
    "CIRCLE_WORKFLOW_ID",
    "BITBUCKET_PIPELINE_UUID",
    "SYSTEM_JOBID",  # Azure Pipelines
    "BUILD_TAG",  # Jenkins
    "MIGCTL_RUN_ID",
)


def ci_run(environ: Mapping[str, str]) -> str | None:
    """`NAME=value` of the first CI run variable set, or None outside CI."""
    for name in CI_RUN_VARIABLES:
        if environ.get(name):
            return f"{name}={environ[name]}"
    return None


def default_key(
    url: str, database: str, body: Mapping[str, Any], environ: Mapping[str, str]
) -> str:
    """Derived from the request and the CI run (the same request in the same run gives the same
    key), or random outside CI (still one key across this command's own retries)."""
    run = ci_run(environ)
    if run is None:
        return f"migctl-{uuid.uuid4().hex}"
    request = json.dumps([url.rstrip("/"), database, dict(body), run], sort_keys=True)
    return f"migctl-{hashlib.sha256(request.encode()).hexdigest()[:40]}"

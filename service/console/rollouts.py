"""Rollouts: the list, and one rollout's page with each database's state and problem."""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

from service.api.context import control_store, request_context
from service.console.blueprint import console
from service.lifecycle import RolloutStatus
from service.services import rollouts as service

PAGE_SIZE = 25
MAX_PAGE = 10_000  # keeps OFFSET within what every control database takes


@console.route("/rollouts")
def rollouts() -> ResponseReturnValue:
    status = request.args.get("status")
    status = status if status in set(RolloutStatus) else None
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), MAX_PAGE)
    first = (page - 1) * PAGE_SIZE
    views, total = service.list_rollouts(
        control_store(), status, request_context(), first=first, last=first + PAGE_SIZE - 1
    )
    return render_template(
        "console/rollouts.html",
        views=views,
        statuses=list(RolloutStatus),
        status=status,
        page=page,
        more=first + PAGE_SIZE < total,
    )


@console.route("/rollouts/<id:rollout_id>")
def rollout(rollout_id: int) -> ResponseReturnValue:
    view = service.get_rollout(control_store(), rollout_id, request_context())
    targets = [
        (target, service.target_state(target), service.target_problem(target))
        for target in view.record.targets
    ]
    return render_template("console/rollout.html", view=view, targets=targets)

"""What /metrics reports from the control database: queue, workers, outcomes, cached states."""

from __future__ import annotations

from service.metrics import ControlFigures
from service.services.access import Principal
from service.store import monitoring, states
from service.store.db import ControlStore, utcnow


def control_figures(store: ControlStore, principal: Principal) -> ControlFigures:
    """The figures as they are now; per-database ones only for databases `principal` sees."""
    now = utcnow()
    with store.transaction() as connection:
        queued, oldest = monitoring.queue(connection)
        running = monitoring.running(connection)
        heartbeat = monitoring.last_heartbeat(connection)
        ended = monitoring.ended_counts(connection)
        cached = states.load_all(connection)
    return ControlFigures(
        queued=queued,
        oldest_queued_seconds=(now - oldest).total_seconds() if oldest else 0.0,
        running=running,
        heartbeat_age_seconds=(now - heartbeat).total_seconds() if heartbeat else None,
        operations={key: n for key, n in ended.items() if principal.sees(key[0])},
        states={
            name: (state.pending_count, _up_to_date(state.state))
            for name, state in cached.items()
            if principal.sees(name)
        },
    )


def _up_to_date(state: str) -> bool | None:
    return {"up_to_date": True, "behind": False}.get(state)

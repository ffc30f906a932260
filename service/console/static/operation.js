// An operation's page follows its server-sent events: each event refreshes the live part
// (rendered by the server, so the page and the refresh never disagree). When the stream is
// refused (too many streams) or EventSource is missing, the live part is polled each second.
"use strict";
(function () {
  const ENDINGS = ["succeeded", "failed", "interrupted", "cancelled", "rejected", "expired"];
  const live = () => document.getElementById("live");
  const finished = () => !live() || live().dataset.finished === "true";
  let queued = false;
  let poller = null;

  function refresh() {
    // Events replayed at connect come in bursts: one refresh per burst.
    if (queued || finished()) return;
    queued = true;
    setTimeout(() => {
      queued = false;
      if (!finished()) window.htmx.trigger(live(), "refresh");
    }, 200);
  }

  function poll() {
    if (poller === null) poller = setInterval(() => (finished() ? clearInterval(poller) : refresh()), 1000);
  }

  function follow() {
    if (finished()) return;
    if (!window.EventSource) return poll();
    const source = new EventSource(live().dataset.events);
    source.onmessage = refresh;
    const kinds = ["queued", "running", ...ENDINGS].map((s) => "operation." + s);
    for (const kind of [...kinds, "step.started", "step.finished"]) {
      source.addEventListener(kind, (event) => {
        refresh();
        const status = JSON.parse(event.data).status;
        if (kind.startsWith("operation.") && ENDINGS.includes(status)) source.close();
      });
    }
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) poll(); // refused: EventSource gives up
    };
    document.body.addEventListener("htmx:afterSwap", () => finished() && source.close());
  }

  document.addEventListener("DOMContentLoaded", follow);
})();

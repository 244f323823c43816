// Follow the signup's status URL and tick each step as it completes. The outcome's texts
// come in the page's language from its data-failed ("%(reason)s" filled in) and data-ready.
(function () {
  const list = document.getElementById("steps");
  const outcome = document.getElementById("outcome");
  async function poll() {
    const response = await fetch(list.dataset.statusUrl, { headers: { Accept: "application/json" } });
    if (!response.ok) return setTimeout(poll, 2000);
    const status = await response.json();
    for (const step of status.steps) {
      const item = list.querySelector(`[data-step="${step.name}"]`);
      if (item) item.className = step.done ? "done" : "pending";
    }
    if (status.failure_reason) {
      outcome.textContent = outcome.dataset.failed.replace("%(reason)s", () => status.failure_reason);
      return;
    }
    if (status.complete) { outcome.textContent = outcome.dataset.ready; return; }
    setTimeout(poll, 1000);
  }
  poll();
})();

// The header's unread badge: asks for my unread count when the page loads, every few
// seconds after, and when the tab comes back to the front. Hidden at zero and for anyone
// the count is not for (not signed in to a tenant).
(() => {
  const badge = document.getElementById("unread-badge");
  if (!badge) return;
  const every = Number(badge.dataset.interval || 5000);

  async function refresh() {
    try {
      const answer = await fetch(badge.dataset.url, {
        credentials: "same-origin", headers: {Accept: "application/json"}, cache: "no-store"});
      if (!answer.ok || answer.redirected) { badge.hidden = true; return; }
      const {unread} = await answer.json();
      badge.textContent = String(unread);
      badge.dataset.count = String(unread);
      badge.hidden = unread === 0;
    } catch (error) {
      // Offline or the server restarting: keep what is shown, try again on the next tick.
    }
  }

  refresh();
  setInterval(refresh, every);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
})();

// popkeep dashboard: live refresh of the account cards, and "Check now" without a
// page reload. Progressive enhancement only: every page works without this file.
"use strict";

const REFRESH_MS = 2000;

function refresh(container) {
  return fetch(container.dataset.refresh + window.location.search, {
    credentials: "same-origin", headers: { "Accept": "text/html" },
  }).then((response) => {
    if (!response.ok) { return; }
    return response.text().then((html) => {
      container.innerHTML = html;
      wire(container);
      const stamp = document.getElementById("updated");
      if (stamp) { stamp.dataset.refreshed = String(Date.now()); }
    });
  }).catch(() => {});
}

function wire(container) {
  for (const form of container.querySelectorAll("form.check-now")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const button = form.querySelector("button");
      if (button) { button.disabled = true; }
      fetch(form.action, {
        method: "POST", credentials: "same-origin",
        headers: { "Accept": "application/json" },
        body: new URLSearchParams(new FormData(form)),
      }).then(() => refresh(container));
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const container = document.querySelector("[data-refresh]");
  if (!container) { return; }
  wire(container);
  window.setInterval(() => refresh(container), REFRESH_MS);
});

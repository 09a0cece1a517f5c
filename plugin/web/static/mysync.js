// "Sync now" without leaving the page: POST by fetch (the CSRF token goes in a header), then follow the
// pass through /users/EXT/sync/progress once a second and reload the page when it is over. Without this
// script the form posts normally and the page offers a refresh link.
"use strict";

(function () {
  const form = document.getElementById("sync-now");
  if (!form) {
    return;
  }
  const button = document.getElementById("sync-now-button");
  const box = document.getElementById("sync-progress");
  const bar = document.getElementById("sync-bar");
  const status = document.getElementById("sync-status");
  const token = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  const progressUrl = form.dataset.progress;

  function show(doc) {
    box.hidden = false;
    bar.max = Math.max(doc.total, 1);
    bar.value = doc.done;
    const folders = doc.folders.filter((f) => f.state !== "off")
      .map((f) => f.title + ": " + f.state).join(", ");
    status.textContent = doc.failed ? "Sync could not run: " + doc.failed
      : (doc.running ? "Syncing… " : "Done. ") + folders;
  }

  async function follow() {
    for (;;) {
      const response = await fetch(progressUrl, {headers: {"Accept": "application/json"}, credentials: "same-origin"});
      if (!response.ok) {
        status.textContent = "Could not read the progress (" + response.status + "). Reload the page.";
        return;
      }
      const doc = await response.json();
      show(doc);
      if (!doc.running) {
        window.setTimeout(() => window.location.reload(), 800);
        return;
      }
      await new Promise((resolve) => window.setTimeout(resolve, 1000));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    status.textContent = "Starting…";
    const response = await fetch(form.action, {
      method: "POST", credentials: "same-origin",
      headers: {"Accept": "application/json", "X-CSRF-Token": token},
    });
    if (!response.ok) {
      status.textContent = "Sync now was refused (" + response.status + "). Reload the page and try again.";
      button.disabled = false;
      return;
    }
    show(await response.json());
    follow();
  });

  if (!box.hidden) {  // the page was loaded while a sync runs: follow it
    button.disabled = true;
    follow();
  }
}());

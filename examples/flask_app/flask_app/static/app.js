// Keeps a job page up to date: asks /jobs/<id>.json every 300 ms and shows the state,
// the progress bar, and the error or the outcome, until the task has finished.
"use strict";

(function () {
  const POLL_MS = 300;
  const FINAL = new Set(["SUCCESS", "FAILURE", "REVOKED"]);
  const page = document.querySelector("[data-status-url]");
  if (!page) {
    return;
  }
  const field = (name) => page.querySelector(`[data-field="${name}"]`);

  function showText(name, text) {
    const element = field(name);
    if (element) {
      element.textContent = text || "";
      element.hidden = !text;
    }
  }

  function showProgress(job) {
    const bar = page.querySelector("[role=progressbar]");
    if (!bar) {
      return;
    }
    const progress = job.progress;
    const percent = progress ? progress.percent : (job.state === "SUCCESS" ? 100 : 0);
    bar.setAttribute("aria-valuenow", String(percent));
    bar.querySelector(".progress-fill").style.width = `${percent}%`;
    if (progress) {
      const unit = progress.message ? ` ${progress.message}` : "";
      showText("progress", `${progress.current} of ${progress.total}${unit} (${percent} %)`);
    }
  }

  function show(job) {
    page.dataset.state = job.state;
    const label = field("label");
    label.textContent = job.label;
    label.className = `state state-${job.state.toLowerCase()}`;
    showProgress(job);
    showText("error", job.error);
    showText("summary", job.summary);
    const download = field("download");
    if (download && job.download_url) {
      download.querySelector("a").href = job.download_url;
      download.hidden = false;
    }
  }

  async function poll() {
    try {
      const response = await fetch(page.dataset.statusUrl, { cache: "no-store" });
      if (response.ok) {
        const job = await response.json();
        show(job);
        if (FINAL.has(job.state)) {
          return;
        }
      }
    } catch (error) {
      // The server restarting or a network blip: keep trying.
    }
    setTimeout(poll, POLL_MS);
  }

  if (!FINAL.has(page.dataset.state)) {
    poll();
  }
})();

// The export page: poll the export's JSON status until it is finished, moving the bar.
(function () {
  "use strict";
  const box = document.getElementById("export");
  const bar = document.getElementById("bar");
  const percent = document.getElementById("percent");
  const state = document.getElementById("state");
  const error = document.getElementById("error");
  const download = document.getElementById("download");

  function show(status) {
    const progress = status.progress;
    const value = status.state === "SUCCESS" ? 100 : progress ? progress.percent : 0;
    bar.value = value;
    percent.textContent = value + " %";
    state.textContent = status.state +
      (progress ? ": " + progress.current + " of " + progress.total + " rows" : "");
    error.hidden = !status.error;
    error.textContent = status.error || "";
    if (status.download_url) {
      download.querySelector("a").href = status.download_url;
      download.hidden = false;
    }
  }

  async function poll() {
    try {
      const response = await fetch(box.dataset.statusUrl, {headers: {Accept: "application/json"}});
      if (response.ok) {
        const status = await response.json();
        show(status);
        if (status.state === "SUCCESS" || status.state === "FAILURE") {
          return;
        }
      }
    } catch (e) {
      // The server restarting: try again below.
    }
    setTimeout(poll, 300);
  }

  poll();
})();

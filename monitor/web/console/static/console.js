// Refreshes the parts of a page marked data-live by fetching their HTML from the server
// every data-every milliseconds. Everything works without it; it only saves reloading.
"use strict";
document.querySelectorAll("[data-live]").forEach((element) => {
  const every = Number(element.dataset.every) || 2000;
  let last = null;
  const refresh = async () => {
    try {
      const response = await fetch(element.dataset.live, { credentials: "same-origin" });
      if (response.redirected || response.status === 401) {
        window.location.reload(); // signed out meanwhile: the page sends to sign-in
        return;
      }
      if (!response.ok) return;
      const html = await response.text();
      if (html !== last) {
        last = html;
        element.innerHTML = html; // server-rendered with every text escaped
      }
    } catch (error) {
      // The monitor restarting: try again at the next tick.
    }
  };
  window.setInterval(refresh, every);
});

/* Porte's pages work without scripts. When scripts run, this adds:
   - a confirmation before a destructive action: a submit button with data-confirm="What will happen";
   - keyboard access to a table that scrolls sideways (on a phone): it becomes focusable, so arrow keys scroll it.
   Live regions (queued work showing its progress) are htmx's, declared in the templates ({% live %}). */
"use strict";

document.addEventListener("submit", (event) => {
  const message = event.submitter && event.submitter.dataset.confirm;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});

function focusWideTables(root) {
  for (const table of root.querySelectorAll("table")) {
    if (table.scrollWidth > table.clientWidth) {
      table.tabIndex = 0;
    } else {
      table.removeAttribute("tabindex");
    }
  }
}

document.addEventListener("DOMContentLoaded", () => focusWideTables(document));
window.addEventListener("resize", () => focusWideTables(document));
document.addEventListener("htmx:afterSettle", (event) => focusWideTables(event.target));

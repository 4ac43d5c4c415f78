// Small progressive enhancements; every page works without them.
document.addEventListener("click", (event) => {
  const toggle = event.target.closest("[data-nav-toggle]");
  if (toggle) {
    const open = toggle.getAttribute("aria-expanded") === "true";
    toggle.setAttribute("aria-expanded", String(!open));
    document.getElementById(toggle.getAttribute("aria-controls")).classList.toggle("open", !open);
  }
  // An error summary's link puts the cursor in its field (a radio group's first choice), label in view.
  const link = event.target.closest("[data-error-summary] a[href^='#']");
  const target = link && document.getElementById(link.getAttribute("href").slice(1));
  const input = target && (target.matches("input, select, textarea") ? target : target.querySelector("input, select, textarea"));
  if (input) {
    event.preventDefault();
    (target.closest(".field") || target).scrollIntoView();
    input.focus({ preventScroll: true });
  }
});

// A form sent back with errors opens at its error summary, so the problems are read first.
document.addEventListener("DOMContentLoaded", () => {
  const summary = document.querySelector("[data-error-summary]");
  if (summary) summary.focus();
});

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

const FIELD = "input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea:not([disabled])";
const FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";

// The first of `root` and its descendants that matches `selector`.
function within(root, selector) {
  return root.matches(selector) ? root : root.querySelector(selector);
}

// Problems are read first: the error summary, or (a form too small for one) the first invalid field.
function problemIn(root) {
  return within(root, "[data-error-summary]") || within(root, "[aria-invalid='true']");
}

function focusOn(element) {
  if (!element.matches(FOCUSABLE)) element.setAttribute("tabindex", "-1");
  element.focus();
}

// A form sent back with errors opens at its error summary, so the problems are read first.
document.addEventListener("DOMContentLoaded", () => {
  const problem = problemIn(document.body);
  if (problem) focusOn(problem);
});

// HTMX replaces the element that had focus, which drops the keyboard user at <body>. Put focus
// where the next step is, from what the swapped content says:
// 1. errors: the error summary or first invalid field;
// 2. a newly opened form (data-autofocus): its first field;
// 3. data-focus-after-swap: the first of the ids it lists that exists (the button used, else the
//    changed item, else a heading), or the element itself when it lists none (a status message).
// Swaps that say none of these (a cost panel loading, search results) leave focus where it is.
// On afterSettle, once HTMX has wired the new content: a key pressed where focus lands does what it says.
document.addEventListener("htmx:afterSettle", (event) => {
  const root = event.target;
  if (!(root instanceof Element) || !root.isConnected) return;
  const problem = problemIn(root);
  if (problem) return focusOn(problem);
  const form = within(root, "form[data-autofocus]");
  const field = form && form.querySelector(FIELD);
  if (field) return focusOn(field);
  const marked = within(root, "[data-focus-after-swap]");
  if (!marked) return;
  const ids = marked.getAttribute("data-focus-after-swap").split(/\s+/).filter(Boolean);
  const target = ids.length ? ids.map((id) => document.getElementById(id)).find(Boolean) : marked;
  if (target) focusOn(target);
});

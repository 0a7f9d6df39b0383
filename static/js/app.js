// Our one script. Everything works without it; it only adds comfort.

const FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex='-1'])";

// A dialog rendered open by the server (the new API key) becomes a real modal: focus moves into
// it and stays there, the page behind cannot be reached until it is closed, and Escape closes it.
// Once closed, focus goes where data-return-focus points, not back to the top of the page.
document.addEventListener("DOMContentLoaded", () => {
  for (const dialog of document.querySelectorAll("dialog.modal[open]")) {
    dialog.close();
    dialog.showModal();
    dialog.addEventListener("close", () => {
      const target = document.querySelector(dialog.dataset.returnFocus || "main");
      if (target) target.focus();
    });
  }
});

// A modal dialog makes the page behind it inert, but Tab from its last control would still
// leave for the browser's own controls: wrap it round to the first one instead (and back).
document.addEventListener("keydown", (event) => {
  if (event.key !== "Tab") return;
  const dialog = document.querySelector("dialog.modal[open]");
  if (!dialog) return;
  const controls = [...dialog.querySelectorAll(FOCUSABLE)].filter((el) => el.offsetParent !== null);
  if (controls.length === 0) return;
  const first = controls[0];
  const last = controls[controls.length - 1];
  const inside = dialog.contains(document.activeElement);
  if (event.shiftKey && (document.activeElement === first || !inside)) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (document.activeElement === last || !inside)) {
    event.preventDefault();
    first.focus();
  }
});

// Copy buttons: <button data-copy="#input-id">. Without them the field is still selectable.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.querySelector(button.dataset.copy);
  if (!field) return;
  field.select();
  try {
    await navigator.clipboard.writeText(field.value);
  } catch {
    document.execCommand("copy");
  }
  button.textContent = "Copied";
});

// A form marked data-submit-once is sent once: a second click (or Enter) while the first is on
// its way does nothing. The server makes one key per form anyway (keys/views.py); this spares
// the second request, whose answer would replace the first one's page. A page the browser
// brings back from its back-forward cache may be sent again.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-submit-once")) return;
  if (form.dataset.sent) {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "true";
});
window.addEventListener("pageshow", () => {
  for (const form of document.querySelectorAll("form[data-sent]")) delete form.dataset.sent;
});

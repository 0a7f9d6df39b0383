// Our one script. Everything works without it; it only adds comfort.

// A dialog rendered open by the server (the new API key) becomes a real modal: focus moves into
// it and stays there, and the page behind cannot be clicked until it is closed.
document.addEventListener("DOMContentLoaded", () => {
  for (const dialog of document.querySelectorAll("dialog.modal[open]")) {
    dialog.close();
    dialog.showModal();
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

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

// Copy buttons: <button data-copy="#id">, for a field (the new key) or a code block (its text).
// Without them the field or the code is still selectable.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const isField = "value" in source && typeof source.select === "function";
  const text = isField ? source.value : source.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (an insecure origin): select the text and let the browser copy it.
    if (isField) {
      source.select();
    } else {
      window.getSelection().selectAllChildren(source);
    }
    document.execCommand("copy");
  }
  if (isField) {
    button.textContent = "Copied";
    return;
  }
  // A code block's button can be used again: it says "Copied" for a moment.
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = label; }, 2000);
});

// Every code block gets a copy button (only with a script: without one it could not copy).
document.addEventListener("DOMContentLoaded", () => {
  let count = 0;
  for (const pre of document.querySelectorAll("main pre")) {
    const code = pre.querySelector("code") || pre;
    if (!code.id) code.id = `code-${++count}`;
    const wrap = document.createElement("div");
    wrap.className = "code-block";
    pre.replaceWith(wrap);
    wrap.append(pre);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button small copy-code";
    button.dataset.copy = `#${code.id}`;
    button.textContent = "Copy";
    const name = pre.getAttribute("aria-label");
    if (name) button.setAttribute("aria-label", `Copy: ${name}`);
    wrap.append(button);
  }
});

// Tabs over code in several languages: <div class="code-tabs"> holding <div class="code-tab">s,
// each starting with its language's heading. Without a script every language shows under its
// heading; with one the headings become a tab list (arrow keys, Home and End move between tabs)
// and the language chosen is chosen on every tab list of the site, and remembered.
const TAB_KEY = "seedream.code-language";

function chooseLanguage(language, focus) {
  for (const tab of document.querySelectorAll(".code-tabs [role='tab']")) {
    const chosen = tab.dataset.language === language;
    tab.setAttribute("aria-selected", String(chosen));
    tab.tabIndex = chosen ? 0 : -1;
    document.getElementById(tab.getAttribute("aria-controls")).hidden = !chosen;
    if (chosen && focus === tab.closest(".code-tabs")) tab.focus();
  }
  try { localStorage.setItem(TAB_KEY, language); } catch { /* storage refused: not remembered */ }
}

document.addEventListener("DOMContentLoaded", () => {
  let count = 0;
  const languages = new Set();
  for (const group of document.querySelectorAll(".code-tabs")) {
    const list = document.createElement("div");
    list.setAttribute("role", "tablist");
    list.className = "tab-list";
    const heading = group.dataset.label;
    if (heading) list.setAttribute("aria-label", heading);
    for (const panel of group.querySelectorAll(":scope > .code-tab")) {
      const title = panel.querySelector(".code-tab-title");
      const id = ++count;
      const tab = document.createElement("button");
      tab.type = "button";
      tab.id = `tab-${id}`;
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-controls", `tab-panel-${id}`);
      tab.dataset.language = panel.dataset.language;
      tab.textContent = title ? title.textContent : panel.dataset.language;
      list.append(tab);
      panel.id = `tab-panel-${id}`;
      panel.setAttribute("role", "tabpanel");
      panel.setAttribute("aria-labelledby", tab.id);
      if (title) title.hidden = true;
      languages.add(panel.dataset.language);
    }
    group.prepend(list);
    list.addEventListener("click", (event) => {
      const tab = event.target.closest("[role='tab']");
      if (tab) chooseLanguage(tab.dataset.language, group);
    });
    list.addEventListener("keydown", (event) => {
      const tabs = [...list.querySelectorAll("[role='tab']")];
      const at = tabs.indexOf(document.activeElement);
      if (at < 0) return;
      const next = {
        ArrowRight: (at + 1) % tabs.length,
        ArrowLeft: (at - 1 + tabs.length) % tabs.length,
        Home: 0,
        End: tabs.length - 1,
      }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      chooseLanguage(tabs[next].dataset.language, group);
    });
  }
  if (languages.size === 0) return;
  let remembered = null;
  try { remembered = localStorage.getItem(TAB_KEY); } catch { /* storage refused */ }
  chooseLanguage(languages.has(remembered) ? remembered : [...languages][0], null);
});

// Menus (<details class="menu">): Escape closes the open one and returns focus to its button;
// a click elsewhere closes it.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  const menu = document.activeElement && document.activeElement.closest("details.menu[open]");
  if (!menu) return;
  menu.open = false;
  menu.querySelector("summary").focus();
});
document.addEventListener("click", (event) => {
  for (const menu of document.querySelectorAll("details.menu[open]")) {
    if (!menu.contains(event.target)) menu.open = false;
  }
});

// Boxes that scroll sideways (a wide table, the dashboard's tabs on a phone) say which of their
// edges hide more, so the CSS can fade those edges out.
function markScrollEdges(box) {
  const hidden = box.scrollWidth - box.clientWidth;
  box.classList.toggle("scrolls-left", hidden > 1 && box.scrollLeft > 1);
  box.classList.toggle("scrolls-right", hidden > 1 && box.scrollLeft < hidden - 1);
}

document.addEventListener("DOMContentLoaded", () => {
  const boxes = document.querySelectorAll(".table-scroll, .side-nav");
  const resized = new ResizeObserver((entries) => {
    for (const entry of entries) markScrollEdges(entry.target);
  });
  for (const box of boxes) {
    box.addEventListener("scroll", () => markScrollEdges(box), { passive: true });
    resized.observe(box);
    markScrollEdges(box);
  }
  // The current page's tab is scrolled into the middle of a nav that scrolls (on a phone).
  for (const nav of document.querySelectorAll(".side-nav")) {
    const current = nav.querySelector("[aria-current='page']");
    if (!current || nav.scrollWidth <= nav.clientWidth) continue;
    nav.scrollLeft = current.offsetLeft - (nav.clientWidth - current.offsetWidth) / 2;
    markScrollEdges(nav);
  }
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

// The playground's reference images: files added by picking or dropping (picking again adds to
// them), a preview of each with a Remove button and the model's limits checked as they are added,
// and the count the live price needs (files cannot travel with the price's GET). Also "What to
// make": only the chosen choice's count is shown, and a set's cap follows the references (a set
// and its references are at most 15 together). Without this script the form still works: a plain
// file input, gallery checkboxes and every count, checked on the server.
//
// The results: an image opens large in a lightbox (a modal dialog: arrow keys step through the
// page's images, Escape closes it, focus stays inside and goes back to the image it came from),
// and each image's URL can be copied. Without the script an image links to its own page.
(() => {
  "use strict";

  const MB = 1024 * 1024;
  const PREVIEW_PIXELS = 96;
  // The files chosen, in order. They outlive the form: when a new model or a refusal replaces
  // it, they are put back into its new file input.
  let chosen = [];

  const fileInput = () => document.getElementById("id_reference_files");
  const counter = () => document.getElementById("reference-count");
  const dropzone = () => document.querySelector("[data-dropzone]");
  const pickedCount = () =>
    document.querySelectorAll("#playground-form input[name='gallery_references']:checked").length;
  const sameFile = (a, b) =>
    a.name === b.name && a.size === b.size && a.lastModified === b.lastModified;
  const fileSize = (bytes) =>
    bytes < MB ? `${Math.max(1, Math.round(bytes / 1024))} KB` : `${(bytes / MB).toFixed(1)} MB`;

  function add(files) {
    for (const file of files) {
      if (!chosen.some((known) => sameFile(known, file))) chosen.push(file);
    }
  }

  // The file input holds exactly the chosen files, so a plain submit sends them.
  function writeBack() {
    const input = fileInput();
    if (!input) return;
    const transfer = new DataTransfer();
    for (const file of chosen) transfer.items.add(file);
    input.files = transfer.files;
  }

  // The number of references the form carries, for the price. True when it changed.
  function count() {
    const field = counter();
    if (!field) return false;
    const before = field.value;
    field.value = String((fileInput() ? chosen.length : 0) + pickedCount());
    showSetCap(Number(field.value));
    return field.value !== before;
  }

  // A set's most images, less the references chosen: said in its choice and told the input.
  function showSetCap(references) {
    const input = document.getElementById("id_max_images");
    if (!input) return;
    const cap = String(Math.max(Number(input.dataset.setTotal) - references, 1));
    input.max = cap;
    for (const node of document.querySelectorAll("[data-set-cap]")) node.textContent = cap;
  }

  // Only the chosen way's count is shown (the server reads only that one).
  function showMode() {
    const checked = document.querySelector("#playground-form input[name='make']:checked");
    const mode = checked ? checked.value : "images";
    for (const wrapper of document.querySelectorAll("[data-make-count]")) {
      wrapper.hidden = wrapper.dataset.makeCount !== mode;
    }
  }

  // The price follows the form's change events (htmx): one from the counter asks for it again.
  function announce() {
    counter()?.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function limitsOf(zone) {
    return {
      model: zone.dataset.model,
      maxCount: Number(zone.dataset.maxCount),
      maxBytes: Number(zone.dataset.maxBytes),
      maxMb: zone.dataset.maxMb,
      formats: zone.dataset.formats.split(" "),
    };
  }

  // What the server will refuse, said before sending (the server's check is the one that counts).
  function problems(file, position, limits) {
    const found = [];
    if (position > limits.maxCount) {
      found.push(`${limits.model} takes at most ${limits.maxCount}: remove one.`);
    }
    if (file.size > limits.maxBytes) {
      found.push(`Too large: ${limits.model} takes at most ${limits.maxMb} MB.`);
    }
    const type = file.type.startsWith("image/") ? file.type.slice(6) : "";
    if (file.type && !limits.formats.includes(type)) {
      found.push(`Not a format ${limits.model} takes.`);
    }
    return found;
  }

  async function drawPreview(file, canvas) {
    const context = canvas.getContext("2d");
    try {
      const bitmap = await createImageBitmap(file, { resizeWidth: PREVIEW_PIXELS * 2 });
      const side = Math.min(bitmap.width, bitmap.height);
      const [x, y] = [(bitmap.width - side) / 2, (bitmap.height - side) / 2];
      context.drawImage(bitmap, x, y, side, side, 0, 0, canvas.width, canvas.height);
      bitmap.close();
    } catch {
      // A format the browser cannot draw (TIFF), or not an image: its extension stands in.
      const extension = (file.name.split(".").pop() || "?").slice(0, 5).toUpperCase();
      context.fillStyle = "#57606a";
      context.font = "600 18px system-ui, sans-serif";
      context.textAlign = "center";
      context.textBaseline = "middle";
      context.fillText(extension, canvas.width / 2, canvas.height / 2);
    }
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function listItem(file, index, limits, picks) {
    const position = picks + index + 1;
    const item = element("li", "reference");
    const canvas = element("canvas", "reference-preview");
    canvas.width = canvas.height = PREVIEW_PIXELS;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", `Preview of ${file.name}`);
    drawPreview(file, canvas);
    const text = element("div", "reference-text");
    text.append(
      element("span", "reference-name", `${position}. ${file.name}`),
      element("span", "help", fileSize(file.size)),
    );
    for (const problem of problems(file, position, limits)) {
      text.append(element("p", "error", problem));
    }
    const remove = element("button", "button small", "Remove");
    remove.type = "button";
    remove.dataset.removeReference = String(index);
    remove.setAttribute("aria-label", `Remove ${file.name}`);
    item.append(canvas, text, remove);
    return item;
  }

  function render() {
    const list = document.getElementById("reference-list");
    const zone = dropzone();
    if (!list || !zone) return;
    const limits = limitsOf(zone);
    const picks = pickedCount();
    list.replaceChildren(...chosen.map((file, index) => listItem(file, index, limits, picks)));
    list.hidden = chosen.length === 0;
    const summary = document.querySelector(".gallery-picks > summary");
    if (summary) {
      summary.textContent = `Pick from your gallery${picks ? ` (${picks} picked)` : ""}`;
    }
  }

  function refresh() {
    writeBack();
    render();
    if (count()) announce();
  }

  // A new form (the page itself, another model's, or a refused one): the files go back in.
  function setUp() {
    const zone = dropzone();
    zone?.querySelector(".dropzone-hint")?.removeAttribute("hidden");
    showMode();
    refresh();
  }

  // Capture phase: this runs before htmx's listener on the form, so the count is current when
  // the price is asked for.
  document.addEventListener(
    "change",
    (event) => {
      const target = event.target;
      if (target === fileInput()) {
        add(target.files);
        writeBack();
        render();
        count();
      } else if (target.name === "gallery_references") {
        render();
        count();
      } else if (target.name === "make") {
        showMode(); // at once; the form for it follows from the server
      }
    },
    true,
  );

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-remove-reference]");
    if (!button) return;
    chosen.splice(Number(button.dataset.removeReference), 1);
    refresh();
    fileInput()?.focus(); // the button is gone: focus stays in the form
  });

  const hasFiles = (event) => event.dataTransfer?.types.includes("Files");

  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    // Outside the drop zone a dropped file would replace the page: refuse it there.
    event.preventDefault();
    const zone = event.target.closest?.("[data-dropzone]");
    event.dataTransfer.dropEffect = zone ? "copy" : "none";
    zone?.classList.add("dragging");
  });

  document.addEventListener("dragleave", (event) => {
    const zone = event.target.closest?.("[data-dropzone]");
    if (zone && !zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
  });

  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    const zone = event.target.closest?.("[data-dropzone]");
    if (!zone) return;
    zone.classList.remove("dragging");
    add(event.dataTransfer.files);
    refresh();
  });

  // A size typed in "Custom size" is the size asked for: the select says so, and a new model's
  // form keeps it (the server keeps a custom size as typed).
  document.addEventListener("input", (event) => {
    if (event.target.id !== "id_custom_size" || !event.target.value.trim()) return;
    const select = document.getElementById("id_size");
    if (select && [...select.options].some((option) => option.value === "custom")) {
      select.value = "custom";
    }
  });

  // --- Results: the lightbox and copying an image's URL ---

  const lightbox = () => document.getElementById("lightbox");
  const shown = () => [...document.querySelectorAll("#generations [data-lightbox]")];
  let current = -1;
  let opener = null;

  function show(index) {
    const links = shown();
    if (links.length === 0) return;
    current = (index + links.length) % links.length;
    const link = links[current];
    const dialog = lightbox();
    const image = dialog.querySelector("#lightbox-image");
    image.src = link.dataset.full;
    image.width = Number(link.dataset.width);
    image.height = Number(link.dataset.height);
    image.alt = link.querySelector("img")?.alt || "";
    dialog.querySelector("#lightbox-title").textContent =
      `${link.dataset.title} (${current + 1} of ${links.length} on this page)`;
    dialog.querySelector("#lightbox-caption").textContent = link.dataset.caption;
    dialog.querySelector("#lightbox-download").href = link.dataset.download;
    dialog.querySelector("#lightbox-details").href = link.href;
    dialog.querySelector("#lightbox-copy").dataset.copyUrl = link.dataset.full;
    for (const button of dialog.querySelectorAll("[data-lightbox-step]")) {
      button.disabled = links.length < 2;
    }
  }

  function open(link) {
    const dialog = lightbox();
    if (!dialog || typeof dialog.showModal !== "function") return false;
    opener = link;
    show(shown().indexOf(link));
    dialog.showModal();
    dialog.querySelector("[data-lightbox-close]").focus();
    return true;
  }

  function unhideCopyButtons(root) {
    if (!navigator.clipboard) return; // nothing to copy with: the buttons stay hidden
    for (const button of root.querySelectorAll?.("[data-copy-url][hidden]") || []) {
      button.hidden = false;
    }
  }

  async function copyUrl(button) {
    const url = new URL(button.dataset.copyUrl, window.location.href).href;
    const label = button.firstChild;
    try {
      await navigator.clipboard.writeText(url);
      label.textContent = "Copied";
    } catch {
      label.textContent = "Copy failed";
    }
    setTimeout(() => {
      label.textContent = "Copy URL";
    }, 2000);
  }

  document.addEventListener("click", (event) => {
    const link = event.target.closest("[data-lightbox]");
    if (link && !event.ctrlKey && !event.metaKey && !event.shiftKey && event.button === 0) {
      if (open(link)) event.preventDefault();
      return;
    }
    const step = event.target.closest("[data-lightbox-step]");
    if (step) show(current + Number(step.dataset.lightboxStep));
    if (event.target.closest("[data-lightbox-close]")) lightbox().close();
    const copy = event.target.closest("[data-copy-url]");
    if (copy) copyUrl(copy);
    // A click on the backdrop (the dialog itself, outside its content) closes it.
    if (event.target === lightbox()) lightbox().close();
  });

  document.addEventListener("keydown", (event) => {
    const dialog = lightbox();
    if (!dialog?.open) return;
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      event.preventDefault();
      show(current + (event.key === "ArrowLeft" ? -1 : 1));
    }
  });

  function setUpLightbox() {
    const dialog = lightbox();
    if (!dialog) return;
    // Escape closes it (the browser's own); focus goes back to the image it was opened from.
    dialog.addEventListener("close", () => {
      const image = dialog.querySelector("#lightbox-image");
      image.removeAttribute("src");
      if (opener?.isConnected) opener.focus();
      opener = null;
    });
    unhideCopyButtons(document);
  }

  document.addEventListener("htmx:load", (event) => {
    const node = event.target;
    if (node.id === "playground-form" || node.querySelector?.("#playground-form")) setUp();
    unhideCopyButtons(node);
  });
  document.addEventListener("DOMContentLoaded", () => {
    setUp();
    setUpLightbox();
  });
})();

// The docs page: the table of contents marks the section being read (aria-current), so the
// contents kept beside the page on a desktop say where you are. Without it nothing is lost.
document.addEventListener("DOMContentLoaded", () => {
  const links = new Map();
  for (const link of document.querySelectorAll(".toc a[href^='#']")) {
    const section = document.getElementById(link.hash.slice(1));
    if (section) links.set(section, link);
  }
  if (links.size === 0 || !("IntersectionObserver" in window)) return;
  const visible = new Set();
  const mark = () => {
    // The first section (in page order) with any part in the reading band is the current one.
    const current = [...links.keys()].find((section) => visible.has(section));
    for (const [section, link] of links) {
      if (section === current) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    }
  };
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (entry.isIntersecting) visible.add(entry.target);
      else visible.delete(entry.target);
    }
    mark();
  }, { rootMargin: "0px 0px -60% 0px" });
  for (const section of links.keys()) observer.observe(section);
});

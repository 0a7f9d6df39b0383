// The card payment page. Until the webhook has credited this purchase: fetch the page again every
// few seconds and swap in its status (a live region, so the change is announced). Without script,
// "Check now" works.
(() => {
  const box = document.getElementById("purchase-status");
  if (!box) return;
  const poll = () => {
    const next = box.dataset.pollUrl;
    if (!next) return;
    setTimeout(async () => {
      try {
        const response = await fetch(next, { credentials: "same-origin" });
        if (!response.ok) return;
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.getElementById("purchase-status");
        if (!fresh) return;
        box.innerHTML = fresh.innerHTML;
        if (fresh.dataset.pollUrl) box.dataset.pollUrl = fresh.dataset.pollUrl;
        else delete box.dataset.pollUrl;
        poll();
      } catch {
        // A network hiccup: the "Check now" link still works.
      }
    }, Number(box.dataset.pollSeconds || 2) * 1000);
  };
  poll();
})();

// Customer self-service: ask before the one irreversible button (no inline script: the CSP forbids it).
document.addEventListener("submit", (ev) => {
  const button = ev.submitter;
  if (button && button.classList.contains("p-danger") && !window.confirm("Confirm the cancellation with the dates and fee shown?")) {
    ev.preventDefault();
  }
});

// A button with data-print prints the page. The Content-Security-Policy allows no inline
// script, so the click is wired here rather than in an onclick attribute.
document.addEventListener("click", function (event) {
  var button = event.target instanceof Element ? event.target.closest("[data-print]") : null;
  if (button) {
    window.print();
  }
});

// The overlay of the photo comparison: the latest photo over the baseline, faded by a slider.
// Without JavaScript the section stays hidden and the side-by-side view shows both photos.
(function () {
  var section = document.getElementById("overlay");
  if (!section) return;
  var over = section.querySelector("[data-photo-overlay] .over");
  var slider = section.querySelector("[data-overlay-opacity]");
  function apply() { over.style.opacity = String(slider.value / 100); }
  slider.addEventListener("input", apply);
  apply();
  section.hidden = false;
})();

// Clicking an area on the map ticks its checkbox, and the map shows what is ticked. The
// checkboxes stay the real, keyboard-usable controls; the map is a faster way to the same.
(function () {
  function sync(map) {
    map.querySelectorAll("[data-area]").forEach(function (shape) {
      var box = document.getElementById("area_" + shape.dataset.area);
      shape.classList.toggle("on", !!(box && box.checked));
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-body-map]").forEach(function (map) {
      map.querySelectorAll("[data-area]").forEach(function (shape) {
        var box = document.getElementById("area_" + shape.dataset.area);
        if (!box) { shape.classList.add("off"); return; }
        shape.addEventListener("click", function () { box.checked = !box.checked; sync(map); });
        box.addEventListener("change", function () { sync(map); });
      });
      sync(map);
    });
  });
})();

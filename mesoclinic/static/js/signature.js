// A signature drawn with a finger, a pen or a mouse, kept as an SVG path in a hidden field.
(function () {
  function setUp(pad) {
    var canvas = pad.querySelector("canvas");
    var field = document.getElementById(pad.dataset.field);
    var clear = pad.querySelector("[data-clear]");
    var ctx = canvas.getContext("2d");
    var path = [];
    var drawing = false;
    ctx.lineWidth = 2; ctx.lineCap = "round"; ctx.strokeStyle = "#1c2430";

    function point(e) {
      var r = canvas.getBoundingClientRect();
      return [Math.round((e.clientX - r.left) * canvas.width / r.width),
              Math.round((e.clientY - r.top) * canvas.height / r.height)];
    }
    canvas.addEventListener("pointerdown", function (e) {
      drawing = true; canvas.setPointerCapture(e.pointerId);
      var p = point(e); path.push("M" + p[0] + " " + p[1]);
      ctx.beginPath(); ctx.moveTo(p[0], p[1]); e.preventDefault();
    });
    canvas.addEventListener("pointermove", function (e) {
      if (!drawing) return;
      var p = point(e); path.push("L" + p[0] + " " + p[1]);
      ctx.lineTo(p[0], p[1]); ctx.stroke(); e.preventDefault();
    });
    function end() { drawing = false; field.value = path.join(" "); }
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
    clear.addEventListener("click", function () {
      path = []; field.value = ""; ctx.clearRect(0, 0, canvas.width, canvas.height);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-signature-pad]").forEach(setUp);
  });
})();

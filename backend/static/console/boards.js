// 红黑榜: "打印公示" prints the notice alone; console.js's [data-print] opens the print dialog,
// this marks the page first (capture phase, so before it) and unmarks it once printed.
"use strict";

(function () {
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-print-only]");
    if (button) {
      document.body.setAttribute("data-printing", button.getAttribute("data-print-only"));
    }
  }, true);
  window.addEventListener("afterprint", function () {
    document.body.removeAttribute("data-printing");
  });
})();

// The clerk's pages: the receipt (小票) printed on a thermal roll as long as the slip.
"use strict";

(function () {
  var MM_PER_CSS_PX = 25.4 / 96;

  // Before printing, the roll's page is given the slip's own length (the stylesheet's page
  // is an A4's length: CSS cannot say "as long as the content"). A rule added through the
  // CSSOM, which the CSP allows (it forbids inline <style>, not stylesheet edits).
  function fitReceipt() {
    var slip = document.getElementById("receipt");
    var link = document.querySelector("link[data-receipt-sheet]");
    if (!slip || !link || !link.sheet) {
      return;
    }
    var paper = document.body.classList.contains("paper-80") ? "80" : "58";
    var length = Math.ceil(slip.getBoundingClientRect().height * MM_PER_CSS_PX) + 6;
    var sheet = link.sheet;
    sheet.insertRule(
      "@page receipt-" + paper + " { size: " + paper + "mm " + length + "mm; margin: 0; }",
      sheet.cssRules.length
    );
  }
  window.addEventListener("beforeprint", fitReceipt);
})();

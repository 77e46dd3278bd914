// The staff account form: show only the picker (township, village, shop) the chosen role
// needs. Without script every picker shows, and the server reads only the role's own.
(function () {
  "use strict";
  function update(form) {
    var picker = form.querySelector("[data-role-picker]");
    if (!picker) return;
    form.querySelectorAll("[data-for-role]").forEach(function (label) {
      var shown = label.getAttribute("data-for-role") === picker.value;
      label.hidden = !shown;
      label.querySelectorAll("select, input").forEach(function (input) {
        input.disabled = !shown;
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-role-form]").forEach(function (form) {
      update(form);
      form.addEventListener("change", function (event) {
        if (event.target.matches("[data-role-picker]")) update(form);
      });
    });
  });
})();

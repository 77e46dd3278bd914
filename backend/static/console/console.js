// The console's little script: confirmations, printing, and the camera as a QR scanner.
// No inline script anywhere (the CSP forbids it): pages mark elements with data- attributes.
"use strict";

(function () {
  // <form data-confirm="确定要…？">: asks before sending.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  }, true);

  // <button data-print>: prints the page (the print stylesheet hides the menu and forms).
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-print]");
    if (button) {
      event.preventDefault();
      window.print();
    }
  });

  // <input data-scanner>: a USB barcode scanner types the code and Enter into the focused
  // field, which sends its form; the field keeps the focus so the next card can be scanned.
  function focusScanner() {
    var field = document.querySelector("input[data-scanner]");
    if (field && document.activeElement === document.body) {
      field.focus();
    }
  }
  document.addEventListener("DOMContentLoaded", focusScanner);
  document.addEventListener("htmx:afterSettle", focusScanner);

  // <button data-camera="field-id">: reads a QR code with the device's camera (jsQR,
  // vendored), puts its text into the field and sends the field's form, as a scanner would.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-camera]");
    if (!button) {
      return;
    }
    event.preventDefault();
    var field = document.getElementById(button.getAttribute("data-camera"));
    if (!field || !navigator.mediaDevices || typeof window.jsQR !== "function") {
      button.textContent = "此设备不能使用摄像头扫码";
      return;
    }
    var video = document.createElement("video");
    video.setAttribute("playsinline", "");
    video.className = "camera";
    button.after(video);
    var canvas = document.createElement("canvas");
    var context = canvas.getContext("2d", { willReadFrequently: true });
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } })
      .then(function (stream) {
        video.srcObject = stream;
        video.play();
        function stop() {
          stream.getTracks().forEach(function (track) { track.stop(); });
          video.remove();
        }
        function look() {
          if (video.readyState === video.HAVE_ENOUGH_DATA) {
            canvas.width = video.videoWidth;
            canvas.height = video.videoHeight;
            context.drawImage(video, 0, 0);
            var image = context.getImageData(0, 0, canvas.width, canvas.height);
            var code = window.jsQR(image.data, image.width, image.height);
            if (code && code.data) {
              stop();
              field.value = code.data;
              if (field.form) {
                field.form.requestSubmit();
              }
              return;
            }
          }
          window.requestAnimationFrame(look);
        }
        window.requestAnimationFrame(look);
      })
      .catch(function () {
        video.remove();
        button.textContent = "无法打开摄像头，请用扫码枪或手动输入";
      });
  });
})();

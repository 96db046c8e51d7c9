// Copy buttons of the project pages: <button class="copy" data-copy="text" hidden>.
// The buttons stay hidden without a clipboard (no script, or an insecure origin),
// where the text beside them can still be selected by hand. The text to copy is
// on the button itself, not looked up by id: a README may carry ids of its own.
(function () {
  "use strict";
  if (!navigator.clipboard || !navigator.clipboard.writeText) {
    return;
  }
  var status = document.querySelector("[data-copy-status]");
  function say(button, text) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = text;
    if (status) {
      status.textContent = text === "Copied" ? "Copied to the clipboard" : text;
    }
    window.setTimeout(function () {
      button.textContent = label;
    }, 2000);
  }
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(button.getAttribute("data-copy")).then(
        function () { say(button, "Copied"); },
        function () { say(button, "Copy failed"); }
      );
    });
  });
})();

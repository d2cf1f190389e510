// The notebooks' explorers without a kernel: tools/site.py drew one frame per combination of control
// values when the site was built; moving a control shows the frame (and readout) for the new values.
(function () {
  "use strict";

  function controlValue(control) {
    if (control.tagName === "SELECT") {
      return Array.from(control.selectedOptions).map(function (option) { return option.value; }).join("-");
    }
    return control.value;
  }

  function setUp(explorer) {
    var frames = JSON.parse(explorer.querySelector("script.pspnet-frames").textContent);
    var controls = Array.from(explorer.querySelectorAll("[data-pspnet-control]"));
    var readout = explorer.querySelector(".pspnet-readout");
    var figure = explorer.querySelector("img.pspnet-figure");
    function show() {
      controls.forEach(function (control) {
        var shown = control.parentElement.querySelector("output");
        if (shown) { shown.textContent = control.value; }
      });
      var key = controls.map(controlValue).join("_");
      var frame = frames[key];
      if (!frame) { return; }
      figure.src = frame[0];
      figure.dataset.frame = key;
      readout.innerHTML = frame[1];
    }
    controls.forEach(function (control) {
      control.addEventListener("input", show);
      control.addEventListener("change", show);
    });
  }

  function setUpAll() {
    document.querySelectorAll(".pspnet-static-explorer").forEach(setUp);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUpAll);
  } else {
    setUpAll();
  }
})();

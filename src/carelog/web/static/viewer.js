// carelog audit viewer: small progressive enhancements. Every page works without them.
(function () {
  "use strict";

  // Empty filter fields are not sent: shorter, cleaner URLs.
  var filters = document.getElementById("filters");
  if (filters) {
    filters.addEventListener("submit", function () {
      Array.prototype.forEach.call(filters.elements, function (el) {
        if (el.name && !el.value) { el.disabled = true; }
      });
    });
    window.addEventListener("pageshow", function () {
      Array.prototype.forEach.call(filters.elements, function (el) { el.disabled = false; });
    });
  }

  // "/" jumps to the filters (like many log viewers), unless typing in a field.
  document.addEventListener("keydown", function (event) {
    var tag = document.activeElement ? document.activeElement.tagName : "";
    if (event.key === "/" && filters && !/^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(tag)) {
      event.preventDefault();
      filters.elements[0].focus();
    }
  });

  // Long-running forms (verification) say they are busy.
  Array.prototype.forEach.call(document.querySelectorAll("form[data-busy]"), function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button");
      if (button) { button.textContent = form.getAttribute("data-busy"); button.disabled = true; }
    });
  });

  // Event details open in a side panel; focus moves to it and returns on close (Escape).
  var panel = document.getElementById("detail-panel");
  var layout = document.getElementById("layout");
  var opener = null;
  if (!panel || !layout) { return; }

  function closePanel() {
    if (panel.hidden) { return; }
    panel.hidden = true;
    panel.innerHTML = "";
    layout.classList.remove("with-panel");
    var selected = layout.querySelector("tr.selected");
    if (selected) { selected.classList.remove("selected"); }
    if (opener) { opener.focus(); }
  }

  layout.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-detail]");
    if (link && event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey) {
      event.preventDefault();
      opener = link;
      fetch(link.href, { headers: { "X-Carelog-Partial": "1" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) { throw new Error(String(response.status)); }
          return response.text();
        })
        .then(function (html) {
          panel.innerHTML = html;
          panel.hidden = false;
          layout.classList.add("with-panel");
          var previous = layout.querySelector("tr.selected");
          if (previous) { previous.classList.remove("selected"); }
          link.closest("tr").classList.add("selected");
          var title = panel.querySelector("h2");
          if (title) { title.tabIndex = -1; title.focus(); }
        })
        .catch(function () { window.location.href = link.href; });
      return;
    }
    if (event.target.closest("[data-close-panel]")) { closePanel(); }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { closePanel(); }
  });
})();

// netpol-conformance HTML report: cell details panel and filters. Plain browser JS, no network.
// The URL fragment sets the state: #cell=<n>|first-mismatch, failures, tag=<t>, protocol=<p>.
(function () {
  "use strict";
  var cells = JSON.parse(document.getElementById("cell-data").textContent);
  var panel = document.getElementById("panel");
  var onlyFailures = document.getElementById("only-failures");
  var tagFilter = document.getElementById("tag-filter");
  var protocolFilter = document.getElementById("protocol-filter");
  var selected = null;

  function text(tag, value, cls) {
    var el = document.createElement(tag);
    el.textContent = value;
    if (cls) { el.className = cls; }
    return el;
  }

  function describeObserved(c) {
    if (!c.observed) { return "not probed"; }
    return c.observed + (c.observedVerdict ? " (means " + c.observedVerdict + ")" : "");
  }

  function showCell(i) {
    var c = cells[i];
    if (!c) { return false; }
    var td = document.querySelector('td.c[data-i="' + i + '"]');
    if (selected) { selected.classList.remove("selected"); }
    if (td) {
      selected = td;
      td.classList.add("selected");
      var details = td.closest("details");
      if (details) { details.open = true; }
      var box = td.getBoundingClientRect();
      if (box.top < 0 || box.bottom > window.innerHeight) {
        td.scrollIntoView({block: "center", inline: "nearest"});
      }
    }
    var title = document.getElementById("panel-title");
    var label = c.kind || c.status;
    title.textContent = c.cell + ": " + label;
    title.className = c.kind || c.status;
    document.getElementById("panel-where").textContent = c.scenario + " / " + c.step;
    var dl = document.getElementById("panel-fields");
    dl.textContent = "";
    var rows = [
      ["why the reference says " + c.expected, c.reason, "reason"],
      ["expected (reference evaluator)", c.expected + (c.served ? "" : " (port not served)")],
      ["declared by the scenario", c.declared || "nothing declared"],
      ["path", (c.path || "unknown (the nodes of the pods are not known)") + ", " + c.family],
      ["observed outcome", describeObserved(c), "observed"],
      ["attempts", String(c.attempts) + (c.history.length ? ": " + c.history.join(", ") : "")],
      ["converged after", c.convergedAfter !== null ? c.convergedAfter + " s after the step's changes" :
        (c.status === "mismatch" ? "never agreed with the reference before the deadline" : "agreed at the first probe, or not probed")],
      ["flaky", c.flaky ? "yes: the observation changed while re-probing" : "no"]
    ];
    if (c.known) { rows.push(["known deviation", c.known.reason + (c.known.link ? " (" + c.known.link + ")" : "")]); }
    if (c.detail) { rows.push(["detail", c.detail]); }
    rows.push(["reproduce", c.command || "no command (not probed)", "command"]);
    rows.forEach(function (r) {
      dl.appendChild(text("dt", r[0]));
      dl.appendChild(text("dd", r[1], r[2] || ""));
    });
    panel.hidden = false;
    panel.setAttribute("data-cell", String(i));
    return true;
  }

  function hidePanel() {
    panel.hidden = true;
    if (selected) { selected.classList.remove("selected"); selected = null; }
  }

  function apply() {
    var failures = onlyFailures.checked;
    var tag = tagFilter.value;
    var proto = protocolFilter.value;
    var shown = 0;
    var sections = document.querySelectorAll("section.scenario");
    sections.forEach(function (sec) {
      var outcome = sec.getAttribute("data-outcome");
      var tags = sec.getAttribute("data-tags").split(" ");
      var protos = sec.getAttribute("data-protocols").split(" ");
      var visible = (!failures || outcome === "fail" || outcome === "error") &&
        (!tag || tags.indexOf(tag) >= 0) && (!proto || protos.indexOf(proto) >= 0);
      sec.hidden = !visible;
      if (visible) { shown += 1; }
      sec.querySelectorAll(".step").forEach(function (step) {
        var o = step.getAttribute("data-outcome");
        step.hidden = failures && o !== "fail" && o !== "error";
      });
      sec.querySelectorAll("[data-protocol]").forEach(function (el) {
        el.hidden = Boolean(proto) && el.getAttribute("data-protocol") !== proto;
      });
    });
    document.getElementById("shown").textContent = "showing " + shown + " of " + sections.length + " scenarios";
    document.getElementById("nothing").hidden = shown > 0;
  }

  function fromHash() {
    var params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    if (params.has("failures")) { onlyFailures.checked = true; }
    if (params.has("all")) { onlyFailures.checked = false; }
    if (params.has("tag")) { tagFilter.value = params.get("tag"); }
    if (params.has("protocol")) { protocolFilter.value = params.get("protocol"); }
    apply();
    var cell = params.get("cell");
    if (cell === "first-mismatch") {
      var first = document.querySelector("td.c.unexpectedly-allowed:not(.known), td.c.unexpectedly-denied:not(.known)");
      if (first) { showCell(Number(first.getAttribute("data-i"))); }
    } else if (cell !== null) {
      showCell(Number(cell));
    }
  }

  document.addEventListener("click", function (ev) {
    var target = ev.target.closest("td.c[data-i], a.cell-link");
    if (target) {
      ev.preventDefault();
      showCell(Number(target.getAttribute("data-i")));
      return;
    }
    var tagLink = ev.target.closest("a[data-tag]");
    if (tagLink) {
      ev.preventDefault();
      tagFilter.value = tagLink.getAttribute("data-tag");
      onlyFailures.checked = false;
      apply();
      document.getElementById("filters").scrollIntoView();
    }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { hidePanel(); }
    if (ev.key === "Enter" && ev.target.matches && ev.target.matches("td.c[data-i]")) {
      showCell(Number(ev.target.getAttribute("data-i")));
    }
  });
  document.getElementById("panel-close").addEventListener("click", hidePanel);
  [onlyFailures, tagFilter, protocolFilter].forEach(function (el) { el.addEventListener("change", apply); });
  window.addEventListener("hashchange", fromHash);
  window.netpolReport = {showCell: showCell, apply: apply, cells: cells};
  fromHash();
})();

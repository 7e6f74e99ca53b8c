// netpol-conformance HTML report: cell details panel and filters. Plain browser JS, no network.
// The URL fragment sets the state: #cell=<n>|first-mismatch, failures, tag=<t>, protocol=<p>.
(function () {
  "use strict";
  // Cell data is packed (html.py's _Packer): strings once, each cell an array in `fields` order.
  var packed = JSON.parse(document.getElementById("cell-data").textContent);
  var strings = packed.strings;
  var F = {};
  packed.fields.forEach(function (name, k) { F[name] = k; });

  function str(i) { return i < 0 ? null : strings[i]; }

  function cell(i) {
    var row = packed.cells[i];
    if (!row) { return null; }
    var where = packed.steps[row[F.step]];
    var known = row[F.known] >= 0 ? packed.knowns[row[F.known]] : null;
    var cmd = row[F.command];
    var reason = row[F.reason] >= 0 ? packed.reasons[row[F.reason]].map(str).join("; ") : "";
    // Where the scenario's pods ran: flat [pod, node, pod, node, ...] string indices.
    var nodes = {};
    var flat = where[2] >= 0 ? packed.nodeMaps[where[2]] : [];
    for (var k = 0; k + 1 < flat.length; k += 2) { nodes[str(flat[k])] = str(flat[k + 1]); }
    return {
      scenario: str(where[0]),
      step: str(where[1]),
      cell: str(row[F.source]) + " -> " + str(row[F.target]) + " " + row[F.port] + "/" + str(row[F.protocol]),
      status: str(row[F.status]),
      kind: str(row[F.kind]),
      expected: str(row[F.expected]),
      declared: str(row[F.declared]),
      served: row[F.served] === 1,
      path: str(row[F.path]),
      nodes: [nodes[str(row[F.source])] || null, nodes[str(row[F.target])] || null],
      family: str(row[F.family]),
      observed: str(row[F.observed]),
      observedVerdict: str(row[F.observedVerdict]),
      attempts: row[F.attempts],
      history: row[F.history].map(str),
      convergedAfter: row[F.convergedAfter],
      flaky: row[F.flaky] === 1,
      slow: str(row[F.slow]),
      reason: reason,
      detail: str(row[F.detail]) || "",
      command: cmd === -1 ? "" : str(cmd[0]) + (str(cmd[1]) || ""),
      known: known ? {reason: str(known[0]), link: str(known[1]) || ""} : null
    };
  }
  var panel = document.getElementById("panel");
  var onlyFailures = document.getElementById("only-failures");
  var tagFilter = document.getElementById("tag-filter");
  var protocolFilter = document.getElementById("protocol-filter");
  // Present only when the run has cells on more than one path; cells of other paths are dimmed.
  var pathFilter = document.getElementById("path-filter");
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
    var c = cell(i);
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
      ["path", (c.path || "unknown (the nodes of the pods are not known)") + ", " + c.family +
        (c.nodes[0] || c.nodes[1] ? " (from " + (c.nodes[0] || "outside the cluster") + " to " + (c.nodes[1] || "outside the cluster") + ")" : ""), "path"],
      ["observed outcome", describeObserved(c), "observed"],
      ["attempts", String(c.attempts) + (c.history.length ? ": " + c.history.join(", ") : "")],
      ["converged after", c.convergedAfter !== null ? c.convergedAfter + " s after the API accepted the step's last change (start of the agreeing probe)" :
        (c.status === "mismatch" ? "never agreed with the reference before the deadline" : "not probed")],
      ["flaky", c.flaky ? "yes: the observation changed while re-probing" : "no"]
    ];
    if (c.slow) { rows.push(["propagation", c.slow]); }
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
    if (pathFilter) { document.body.setAttribute("data-path", pathFilter.value); }
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

  // Focus: a page opened on a cell (#cell=...) shows that cell's step with the summary above it,
  // so the cell is in view without scrolling (a scrolled page comes out blank in chromium's
  // --screenshot); #all or any filter change shows the whole report again.
  function focusOn(td) {
    document.body.classList.add("focus");
    document.getElementById("focus-note").hidden = false;
    var section = td.closest("section.scenario");
    var step = td.closest(".step");
    document.querySelectorAll("section.scenario").forEach(function (sec) { sec.hidden = sec !== section; });
    section.querySelectorAll(".step").forEach(function (st) { st.hidden = st !== step; });
    window.scrollTo(0, 0);
  }

  function unfocus() {
    document.body.classList.remove("focus");
    document.getElementById("focus-note").hidden = true;
  }

  function fromHash(initial) {
    var params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    unfocus();
    if (params.has("failures")) { onlyFailures.checked = true; }
    if (params.has("all")) { onlyFailures.checked = false; }
    if (params.has("tag")) { tagFilter.value = params.get("tag"); }
    if (params.has("protocol")) { protocolFilter.value = params.get("protocol"); }
    if (params.has("path") && pathFilter) { pathFilter.value = params.get("path"); }
    apply();
    var cell = params.get("cell");
    var i = null;
    if (cell === "first-mismatch") {
      var first = document.querySelector("td.c.unexpectedly-allowed:not(.known), td.c.unexpectedly-denied:not(.known)");
      if (first) { i = Number(first.getAttribute("data-i")); }
    } else if (cell !== null) {
      i = Number(cell);
    }
    var td = i === null ? null : document.querySelector('td.c[data-i="' + i + '"]');
    if (td && initial === true) { focusOn(td); }
    if (i !== null) { showCell(i); }
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
  // Tooltips are made on first hover, not shipped in the page (a reason per cell is large).
  document.addEventListener("mouseover", function (ev) {
    var td = ev.target.closest && ev.target.closest("td.c[data-i]");
    if (td && !td.title) {
      var c = cell(Number(td.getAttribute("data-i")));
      if (c) { td.title = c.cell + ": " + (c.kind || c.status) + " (click for details)\nwhy: " + c.reason; }
    }
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { hidePanel(); }
    if (ev.key === "Enter" && ev.target.matches && ev.target.matches("td.c[data-i]")) {
      showCell(Number(ev.target.getAttribute("data-i")));
    }
  });
  document.getElementById("panel-close").addEventListener("click", hidePanel);
  [onlyFailures, tagFilter, protocolFilter, pathFilter].forEach(function (el) {
    if (!el) { return; }
    el.addEventListener("change", function () { unfocus(); apply(); });
  });
  window.addEventListener("hashchange", function () { fromHash(false); });
  window.netpolReport = {showCell: showCell, apply: apply, cell: cell, count: packed.cells.length};
  fromHash(true);
})();

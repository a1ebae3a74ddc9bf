/* fastdream gallery: cards from the inline JSON, filtered and sorted in place. No network, no libraries. */
(function () {
  "use strict";
  var runs = JSON.parse(document.getElementById("runs").textContent);
  var eager = /[?&]eager\b/.test(location.search);  // load every card's media now (checks, screenshots)
  var root = document.documentElement;
  var $ = function (id) { return document.getElementById(id); };
  var state = { ok: 0, failed: 0 };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(x, digits) { return x === null || x === undefined ? "" : Number(x).toFixed(digits); }
  function duration(s) {
    if (s === null || s === undefined) return "";
    s = Math.round(s);
    return s >= 3600 ? Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min"
         : s >= 60 ? Math.floor(s / 60) + " min " + (s % 60) + " s" : s + " s";
  }
  function settle(media, ok, w, h) {
    if (media.hasAttribute("data-state")) return;
    media.setAttribute("data-state", ok ? "ok" : "error");
    media.setAttribute("data-w", String(w || 0));
    media.setAttribute("data-h", String(h || 0));
    state[ok ? "ok" : "failed"] += 1;
    root.setAttribute("data-media-ok", String(state.ok));
    root.setAttribute("data-media-failed", String(state.failed));
  }

  function mediaFor(run) {
    var box = el("div", { "class": "media" });
    var m = run.media;
    if (!m) { box.appendChild(el("span", { "class": "none" }, "no turntable yet")); return box; }
    var media;
    if (m.element === "video") {
      media = el("video", { muted: "", loop: "", playsinline: "", preload: eager ? "auto" : "none",
                            title: "hover to play" });
      media.muted = true;
      media.addEventListener("loadeddata", function () { settle(media, media.videoWidth > 0, media.videoWidth, media.videoHeight); });
      media.addEventListener("error", function () { settle(media, false); });
      media.addEventListener("mouseenter", function () { media.play().catch(function () {}); });
      media.addEventListener("mouseleave", function () { media.pause(); });
      media.src = m.src;
    } else {
      media = el("img", { alt: run.prompt, loading: eager ? "eager" : "lazy" });
      media.addEventListener("load", function () { settle(media, media.naturalWidth > 0, media.naturalWidth, media.naturalHeight); });
      media.addEventListener("error", function () { settle(media, false); });
      media.src = m.src;
    }
    media.className = "turntable";
    box.appendChild(media);
    box.appendChild(el("span", { "class": "tag" }, m.label));
    return box;
  }

  function card(run) {
    var c = el("article", { "class": "card", "data-name": run.name, "data-status": run.status });
    c.appendChild(mediaFor(run));
    var b = el("div", { "class": "body" });
    b.appendChild(el("p", { "class": "prompt" }, run.prompt));
    var meta = el("p", { "class": "meta" });
    meta.appendChild(el("span", { "class": "status " + run.status }, run.status));
    var bits = ["seed " + run.seed, duration(run.seconds),
                run.steps !== null ? run.steps + " steps" : "",
                run.steps_per_s !== null ? fmt(run.steps_per_s, 2) + " steps/s" : "", run.node || ""];
    meta.appendChild(document.createTextNode(" " + bits.filter(Boolean).join(" \u00b7 ")));
    b.appendChild(meta);
    var names = Object.keys(run.metrics);
    if (names.length) {
      var mt = el("p", { "class": "metrics" });
      names.sort().forEach(function (k) { mt.appendChild(el("span", {}, k + " " + fmt(run.metrics[k], 3))); });
      b.appendChild(mt);
    }
    var links = el("p", { "class": "links" });
    ["GLB", "OBJ", "config", "log", "metrics", "contact sheet"].forEach(function (k) {
      if (run.links[k]) links.appendChild(el("a", { href: run.links[k] }, k));
      else if (k !== "contact sheet" && k !== "metrics") links.appendChild(el("span", { "class": "off" }, k));
    });
    b.appendChild(links);
    c.appendChild(b);
    run.element = c;
    return c;
  }

  var metricNames = {};
  var statuses = {};
  runs.forEach(function (r) {
    statuses[r.status] = (statuses[r.status] || 0) + 1;
    Object.keys(r.metrics).forEach(function (k) { metricNames[k] = true; });
  });
  $("counts").textContent = runs.length + " runs: " +
    Object.keys(statuses).sort().map(function (s) { return statuses[s] + " " + s; }).join(", ");
  Object.keys(statuses).sort().forEach(function (s) { $("status").appendChild(el("option", { value: s }, s)); });
  var sorts = [["prompt", "prompt"], ["seed", "seed"], ["status", "status"], ["seconds", "time"],
               ["steps_per_s", "steps/s"]];
  Object.keys(metricNames).sort().forEach(function (k) {
    $("metric").appendChild(el("option", { value: k }, k));
    sorts.push(["metric:" + k, k]);
  });
  sorts.forEach(function (s) { $("sort").appendChild(el("option", { value: s[0] }, s[1])); });
  var descending = false;

  function key(run, by) {
    if (by.indexOf("metric:") === 0) { var v = run.metrics[by.slice(7)]; return v === undefined ? null : v; }
    return run[by] === undefined ? null : run[by];
  }
  function compare(by) {
    return function (a, b) {
      var x = key(a, by), y = key(b, by);
      if (x === null || y === null) return x === y ? 0 : (x === null ? 1 : -1);  // missing values last
      var d = typeof x === "string" ? x.localeCompare(y) : x - y;
      return descending ? -d : d;
    };
  }
  function visible(run) {
    var q = $("q").value.trim().toLowerCase(), st = $("status").value, m = $("metric").value;
    if (q && run.prompt.toLowerCase().indexOf(q) < 0) return false;
    if (st && run.status !== st) return false;
    if (m) {
      var v = run.metrics[m], lo = parseFloat($("min").value), hi = parseFloat($("max").value);
      if (v === undefined) return false;
      if (!isNaN(lo) && v < lo) return false;
      if (!isNaN(hi) && v > hi) return false;
    }
    return true;
  }
  var controls = ["q", "status", "metric", "min", "max", "sort"];
  function readHash() {  // the view lives in the address (#status=failed&sort=seconds&desc=1): links keep it
    var params = new URLSearchParams(location.hash.slice(1));
    controls.forEach(function (id) { if (params.has(id)) $(id).value = params.get(id); });
    descending = params.get("desc") === "1";
    $("order").innerHTML = descending ? "&#8593;" : "&#8595;";
  }
  function writeHash() {
    var params = new URLSearchParams();
    controls.forEach(function (id) { if ($(id).value && !(id === "sort" && $(id).value === "prompt")) params.set(id, $(id).value); });
    if (descending) params.set("desc", "1");
    var hash = params.toString();
    if (hash === location.hash.slice(1)) return;
    try { history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search); }
    catch (e) { /* some browsers refuse it on file:// pages: the view still works, the address just lags */ }
  }
  function update() {
    writeHash();
    var grid = $("grid");
    var shown = runs.slice().sort(compare($("sort").value)).filter(visible);
    runs.forEach(function (r) { if (r.element.parentNode) grid.removeChild(r.element); });
    shown.forEach(function (r) { grid.appendChild(r.element); });
    root.setAttribute("data-shown", String(shown.length));
  }

  runs.forEach(card);
  readHash();
  controls.forEach(function (id) {
    $(id).addEventListener("input", update);
    $(id).addEventListener("change", update);
  });
  $("order").addEventListener("click", function () {
    descending = !descending;
    $("order").innerHTML = descending ? "&#8593;" : "&#8595;";
    update();
  });
  window.addEventListener("hashchange", function () { readHash(); update(); });
  update();
  if (!eager && "IntersectionObserver" in window) {  // videos load when they scroll into view
    var seen = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { e.target.preload = "metadata"; e.target.load(); seen.unobserve(e.target); }
      });
    });
    runs.forEach(function (r) { var v = r.element.querySelector("video"); if (v) seen.observe(v); });
  }
  root.setAttribute("data-cards", String(runs.length));
})();

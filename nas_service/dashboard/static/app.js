// NAS dashboard: a hash-routed single page over the /api/v1 REST API. No build step.
// The job page fetches one compact columnar payload (/jobs/{id}/points) and draws it with
// WebGL (scattergl); architecture strings are fetched lazily on hover and click.
"use strict";

const API = "/api/v1";
const POLL_MS = 2000;
const ACTIVE = new Set(["queued", "running"]);
window.nasTimings = { appStartMs: performance.now() };
const state = { token: localStorage.getItem("nas-token") || "", timer: null, archCache: new Map() };

// ---------- HTTP ----------

class ApiError extends Error {
  constructor(status, detail) { super(describe(detail)); this.status = status; }
}
function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  return JSON.stringify(detail);
}

function prefetched(path) {
  // A response index.html started fetching before the scripts loaded; each is used once.
  const responses = window.nasPrefetch || {};
  const response = responses[path] || null;
  delete responses[path];
  return response;
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${state.token}` }, options.headers || {});
  const resp = await (prefetched(path) || fetch(API + path, Object.assign({}, options, { headers })));
  if (resp.status === 401) { logout(); throw new ApiError(401, "not logged in"); }
  if (!resp.ok) {
    let detail = resp.statusText;
    try { detail = (await resp.json()).detail; } catch (_) { /* keep statusText */ }
    throw new ApiError(resp.status, detail);
  }
  return resp;
}
const getJson = async (path) => (await api(path)).json();

// ---------- helpers ----------

const $ = (sel) => document.querySelector(sel);
function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}
function row(cells) { const tr = el("tr"); for (const c of cells) { const td = el("td"); td.append(c); tr.append(td); } return tr; }
const originLabel = (origin) => (origin === "initial" ? "warm start" : "sampler");
const fmt = (x, d = 4) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
function stopPolling() { if (state.timer) { clearTimeout(state.timer); state.timer = null; } }
function plotReady() { return typeof window.Plotly !== "undefined"; }

async function archOf(jobId, candidateId) {
  const key = `${jobId}/${candidateId}`;
  if (!state.archCache.has(key)) {
    state.archCache.set(key, getJson(`/jobs/${jobId}/candidates/${candidateId}?layers=false`).then((c) => c.arch));
  }
  return state.archCache.get(key);
}

// ---------- auth ----------

function logout() {
  state.token = "";
  localStorage.removeItem("nas-token");
  location.hash = "#/login";
}

async function login(token) {
  state.token = token;
  const me = await getJson("/me");
  localStorage.setItem("nas-token", token);
  return me;
}

// ---------- views ----------

function show(id) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== id;
  $("#logout").hidden = !state.token;
}

async function viewJobs() {
  show("view-jobs");
  const body = $("#jobs-table tbody");
  const page = await getJson("/jobs?limit=200");
  body.replaceChildren();
  for (const job of page.items) {
    const box = el("input", null, { type: "checkbox", value: job.id, class: "compare-box" });
    const link = el("a", job.id, { href: `#/jobs/${job.id}` });
    const progress = el("progress", null, { max: job.trials_budget || 1, value: job.trials_done });
    const label = el("span", ` ${job.trials_done}/${job.trials_budget ?? "∞"}`);
    const prog = el("span"); prog.append(progress, label);
    const tr = row([box, link, job.name || "", el("span", job.status, { class: `status ${job.status}` }), prog,
      `${job.spec.space} / ${job.spec.device}`, new Date(job.created_at).toLocaleString()]);
    tr.dataset.jobId = job.id;
    body.append(tr);
  }
  if (page.items.some((j) => ACTIVE.has(j.status))) state.timer = setTimeout(route, POLL_MS * 2);
}

async function viewDatasets() {
  show("view-datasets");
  const body = $("#datasets-table tbody");
  const items = await getJson("/datasets");
  body.replaceChildren();
  for (const d of items) {
    const remove = el("button", "Delete", { class: "delete-dataset" });
    remove.onclick = async () => {
      $("#dataset-error").textContent = "";
      try { await api(`/datasets/${d.id}`, { method: "DELETE" }); await viewDatasets(); }
      catch (e) { $("#dataset-error").textContent = e.message; }
    };
    const tr = row([d.id, d.name, `${d.num_classes} (${d.classes.join(", ")})`, d.train_shape.join("x"),
      d.test_shape.join("x"), d.size, el("code", `upload:${d.id}`), remove]);
    tr.dataset.datasetId = d.id;
    body.append(tr);
  }
}

async function uploadDataset(file) {
  // The file is the raw body (the server streams it to disk), named by the query.
  await api(`/datasets?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file,
    headers: { "Content-Type": "application/octet-stream" } });
}

async function viewNew() {
  // The form starts from the server's job spec defaults (the README's default job): one source of defaults.
  show("view-new");
  const form = $("#new-job-form");
  if (!form.space.options.length) {
    const [spaces, devices, defaults] = await Promise.all([getJson("/spaces"), getJson("/devices"),
      getJson("/spec/defaults")]);
    state.spaces = new Map(spaces.items.map((s) => [s.name, s]));
    state.specDefaults = defaults;
    for (const s of spaces.items) form.space.append(el("option", s.name, { value: s.name }));
    for (const d of devices.items) form.device.append(el("option", d.name, { value: d.name }));
    form.space.value = defaults.space;
    form.device.value = defaults.device;
    form.dataset.value = defaults.dataset;
    form.sampler.value = defaults.sampler;
    form.trials.value = defaults.budget.trials ?? "";
    form.max_latency_ms.value = defaults.constraints.max_latency_ms ?? "";
    form.max_params.value = defaults.constraints.max_params ?? "";
    form.scorer.value = defaults.training.scorer;
    form.epochs.value = defaults.training.epochs;
    form.seed.value = defaults.seed;
    form.space.onchange = () => resolutionChoices(form);
    resolutionChoices(form);
  }
}

function resolutionChoices(form) {
  // The chosen space's resolutions, the default's selected if the space allows it; "searched" leaves it open.
  const allowed = state.spaces.get(form.space.value)?.choices.resolution || [];
  const wanted = form.resolution.value || String(state.specDefaults.resolution ?? "");
  form.resolution.replaceChildren(...allowed.map((r) => el("option", `${r} px`, { value: r })),
    el("option", "searched (every resolution of the space)", { value: "" }));
  form.resolution.value = allowed.map(String).includes(wanted) ? wanted : String(allowed[0] ?? "");
}

function specFromForm(form) {
  const spec = {
    space: form.space.value, device: form.device.value, dataset: form.dataset.value, sampler: form.sampler.value,
    resolution: form.resolution.value ? Number(form.resolution.value) : null,
    budget: { trials: Number(form.trials.value) },
    training: { scorer: form.scorer.value, epochs: Number(form.epochs.value) },
    constraints: {
      max_latency_ms: form.max_latency_ms.value ? Number(form.max_latency_ms.value) : null,
      max_params: form.max_params.value ? Number(form.max_params.value) : null,
    },
    seed: Number(form.seed.value),
  };
  if (form.name.value) spec.name = form.name.value;
  return spec;
}

function paretoTraces(p) {
  // Split the columnar payload into four WebGL traces: trained trials, early-stopped trials (partial
  // accuracy, hollow), the front (highlighted, drawn as a staircase), and infeasible candidates, which are
  // never trained and so have no accuracy: they are marked at their latency in a strip under the plot (y2).
  // Trained trials that run partly on the host CPU (an op the accelerator cannot run) get their own symbol.
  const all = { x: [], y: [], c: [], t: [] }, bad = { x: [], y: [], c: [], t: [] }, cut = { x: [], y: [], c: [], t: [] };
  const cpu = { x: [], y: [], c: [], t: [] }, fail = { x: [], y: [], c: [], t: [] };
  const shot = { x: [], y: [], c: [], t: [] };  // scored by a one-shot job's supernet: the faint cloud
  const front = [];
  const n = p.trial.length;
  for (let i = 0; i < n; i++) {
    if (p.failed && p.failed[i]) {
      fail.x.push(p.latency_ms[i]); fail.y.push(0); fail.c.push(p.candidate[i]); fail.t.push(p.trial[i]);
    } else if (!p.feasible[i]) {
      bad.x.push(p.latency_ms[i]); bad.y.push(0); bad.c.push(p.candidate[i]); bad.t.push(p.trial[i]);
    } else if (p.accuracy[i] !== null && p.stopped && p.stopped[i]) {
      cut.x.push(p.latency_ms[i]); cut.y.push(p.accuracy[i]); cut.c.push(p.candidate[i]); cut.t.push(p.trial[i]);
    } else if (p.accuracy[i] !== null && p.oneshot && p.oneshot[i]) {
      shot.x.push(p.latency_ms[i]); shot.y.push(p.accuracy[i]); shot.c.push(p.candidate[i]); shot.t.push(p.trial[i]);
    } else if (p.accuracy[i] !== null && p.cpu && p.cpu[i]) {
      cpu.x.push(p.latency_ms[i]); cpu.y.push(p.accuracy[i]); cpu.c.push(p.candidate[i]); cpu.t.push(p.trial[i]);
    } else if (p.accuracy[i] !== null) {
      all.x.push(p.latency_ms[i]); all.y.push(p.accuracy[i]); all.c.push(p.candidate[i]); all.t.push(p.trial[i]);
    }
  }
  const seen = new Set();
  for (let i = 0; i < n; i++) {
    if (p.front[i] && !seen.has(p.candidate[i]) && p.accuracy[i] !== null) {
      seen.add(p.candidate[i]); front.push(i);
    }
  }
  front.sort((a, b) => p.latency_ms[a] - p.latency_ms[b]);
  // A one-shot job's front, once confirmed, is drawn at its members' standalone accuracies.
  const frontAcc = (i) => (p.confirmed && p.confirmed[i] !== null && p.confirmed[i] !== undefined
    ? p.confirmed[i] : p.accuracy[i]);
  const hover = "trial %{text}<br>latency %{x:.3f} ms<br>accuracy %{y:.4f}<extra></extra>";
  return [
    { type: "scattergl", mode: "markers", name: "trials", x: all.x, y: all.y, customdata: all.c, text: all.t,
      hovertemplate: hover, marker: { size: 8, color: "#2c5aa0", opacity: 0.8 } },
    { type: "scattergl", mode: "markers", name: "one-shot (supernet)", x: shot.x, y: shot.y, customdata: shot.c,
      text: shot.t, hovertemplate: "trial %{text}<br>latency %{x:.3f} ms<br>one-shot accuracy %{y:.4f}<extra></extra>",
      marker: { size: 6, color: "#2c5aa0", opacity: 0.2 } },
    { type: "scattergl", mode: "markers", name: "stopped early", x: cut.x, y: cut.y, customdata: cut.c, text: cut.t,
      hovertemplate: "trial %{text}<br>latency %{x:.3f} ms<br>accuracy %{y:.4f} (stopped early)<extra></extra>",
      marker: { size: 8, color: "#7f8c8d", symbol: "circle-open", line: { width: 2 } } },
    { type: "scattergl", mode: "markers", name: "partly on CPU", x: cpu.x, y: cpu.y, customdata: cpu.c, text: cpu.t,
      hovertemplate: "trial %{text}<br>latency %{x:.3f} ms (partly on the host CPU)<br>accuracy %{y:.4f}<extra></extra>",
      marker: { size: 9, color: "#8e44ad", symbol: "triangle-up" } },
    { type: "scattergl", mode: "markers", name: "failed", x: fail.x, y: fail.y, customdata: fail.c, text: fail.t,
      yaxis: "y2", hovertemplate: "trial %{text}<br>latency %{x:.3f} ms<br>failed (see the trial table)<extra></extra>",
      marker: { size: 9, color: "#111", symbol: "diamond-open", line: { width: 2 } } },
    { type: "scattergl", mode: "markers", name: "infeasible", x: bad.x, y: bad.y, customdata: bad.c, text: bad.t,
      yaxis: "y2", hovertemplate: "trial %{text}<br>latency %{x:.3f} ms<br>infeasible (not trained)<extra></extra>",
      marker: { size: 7, color: "#c0392b", symbol: "x", opacity: 0.6 } },
    { type: "scattergl", mode: "lines+markers", name: "Pareto front", line: { shape: "hv", color: "#e67e22" },
      x: front.map((i) => p.latency_ms[i]), y: front.map(frontAcc),
      customdata: front.map((i) => p.candidate[i]), text: front.map((i) => p.trial[i]),
      hovertemplate: hover, marker: { size: 10, color: "#e67e22", line: { width: 1, color: "#333" } } },
  ];
}

function axisRanges(latencies, accuracies) {
  // Ranges from the data, not Plotly's autorange, which on one or two points spans accuracy up to 1.5 and
  // latency over decades: latency (log axis) 10% either side of what is drawn, accuracy padded and kept in [0, 1].
  const xs = latencies.filter((x) => x > 0), ys = accuracies.filter((y) => y !== null && y !== undefined);
  const ranges = {};
  if (xs.length) {
    const lo = Math.min(...xs), hi = Math.max(...xs);
    ranges.x = [Math.log10(lo / 1.1), Math.log10(hi * 1.1)];
  }
  if (ys.length) {
    const lo = Math.min(...ys), hi = Math.max(...ys), pad = Math.max(0.02, 0.08 * (hi - lo));
    ranges.y = [Math.max(0, lo - pad), Math.min(1, hi + pad)];
  }
  return ranges;
}

function paretoLayout(title, infeasibleStrip = true, yTitle = "accuracy", ranges = {}) {
  const layout = {
    title: { text: title }, margin: { t: 40, r: 10, b: 90, l: 60 }, hovermode: "closest", uirevision: "keep",
    xaxis: { title: { text: "latency (ms, log scale)" }, type: "log" }, legend: { orientation: "h", y: -0.25 },
    yaxis: { title: { text: yTitle } },
  };
  if (ranges.x) layout.xaxis.range = ranges.x;
  if (ranges.y) layout.yaxis.range = ranges.y;
  if (infeasibleStrip) {
    layout.xaxis.anchor = "y2";
    layout.yaxis.domain = [0.14, 1];
    layout.yaxis2 = { domain: [0, 0.08], showticklabels: false, zeroline: false, showgrid: false, fixedrange: true,
      title: { text: "not trained", font: { size: 10 } } };
  }
  return layout;
}

async function viewJob(jobId) {
  const seq = state.routeSeq;
  const plot = $("#pareto-plot");
  const [job, points] = await Promise.all([getJson(`/jobs/${jobId}`), getJson(`/jobs/${jobId}/points`)]);
  if (seq !== state.routeSeq) return;  // the user went elsewhere while this (poll) was on its way
  show("view-job");  // only once the job is known: another job's page is never left showing under this id
  state.jobId = jobId;
  window.nasTimings.pointsLoadedMs = performance.now();
  $("#job-title").textContent = `Job ${job.id}${job.name ? ` — ${job.name}` : ""}`;
  const c = job.trial_counts || {};
  const oneshot = job.spec.training.mode === "oneshot";
  const scorer = job.spec.training.scorer === "estimate" ? "ESTIMATED accuracy (not trained)"
    : oneshot ? "one-shot (supernet scores, front confirmed by training)" : "trained";
  $("#job-status").textContent = `${job.status} · ${job.trials_done}/${job.trials_budget ?? "∞"} trials · ` +
    `${job.spec.space} on ${job.spec.device} · ${job.spec.dataset} · ${job.spec.sampler} · ${scorer} · ` +
    `${c.complete || 0} trained, ${c.stopped || 0} stopped early, ${c.infeasible || 0} infeasible, ` +
    `${c.failed || 0} failed` + (job.error ? ` · ${job.error}` : "");
  const zip = $("#download-front");
  zip.disabled = job.estimated || job.front_size === 0;
  zip.title = job.estimated ? "no files: this job estimates accuracy (scorer: estimate), nothing is trained"
    : job.front_size === 0 ? "no files yet: the front is empty" : "";
  $("#front-reason").textContent = zip.title;
  zip.onclick = () => saveBlob(`/jobs/${jobId}/front.zip`, `job${jobId}_front.zip`)
    .catch((e) => { $("#front-reason").textContent = e.message; });
  const cancel = $("#cancel-job");
  cancel.hidden = !ACTIVE.has(job.status);
  cancel.onclick = async () => { await api(`/jobs/${jobId}/cancel`, { method: "POST" }); route(); };
  const yTitle = job.estimated ? "accuracy (ESTIMATED, not trained)"
    : oneshot ? "accuracy (one-shot scores; the front trained from scratch)" : "accuracy";
  const trained = points.accuracy.map((a, i) => (points.feasible[i] && !(points.failed && points.failed[i]) ? a : null));
  await Plotly.react(plot, paretoTraces(points), paretoLayout(`accuracy vs latency · ${points.trial.length} trials`,
    true, yTitle, axisRanges(points.latency_ms, trained)), { responsive: true, displaylogo: false });
  window.nasTimings.plotRenderedMs = performance.now();
  plot.dataset.points = String(points.trial.length);
  plot.dataset.rendered = "1";
  if (!plot.dataset.bound) {
    plot.dataset.bound = "1";
    plot.on("plotly_hover", async (ev) => {
      const cid = ev.points[0].customdata;
      if (cid === null || cid === undefined) return;
      $("#hover-arch").textContent = "…";
      try { $("#hover-arch").textContent = await archOf(state.jobId, cid); } catch (e) { $("#hover-arch").textContent = e.message; }
    });
    plot.on("plotly_click", (ev) => {
      const cid = ev.points[0].customdata;
      if (cid !== null && cid !== undefined) location.hash = `#/jobs/${state.jobId}/candidates/${cid}`;
    });
  }
  const front = await getJson(`/jobs/${jobId}/front`);
  if (seq !== state.routeSeq) return;
  const body = $("#front-table tbody");
  body.replaceChildren();
  for (const m of front.items) {
    body.append(row([el("a", m.candidate_id, { href: `#/jobs/${jobId}/candidates/${m.candidate_id}` }),
      originLabel(m.origin), fmt(m.accuracy), fmt(m.int8_accuracy), fmt(m.latency_ms, 3),
      m.cpu_fraction ? `${(100 * m.cpu_fraction).toFixed(0)}%` : "–",
      el("code", m.arch)]));
  }
  await trialTable(jobId);
  if (seq !== state.routeSeq) return;
  // Poll on the points' own status: it comes from the same snapshot as the points, so the last poll is complete.
  if (ACTIVE.has(points.status) || ACTIVE.has(job.status)) {
    state.timer = setTimeout(() => viewJob(jobId).catch(showError), POLL_MS);
  }
}

async function trialTable(jobId) {
  // Sorted by the server (missing values last); a header click toggles the order of its column.
  const table = $("#trial-table");
  const sort = table.dataset.sort || "number", order = table.dataset.order || "asc";
  const request = table.dataset.request = String(Number(table.dataset.request || 0) + 1);
  const page = await getJson(`/jobs/${jobId}/trials?limit=200&sort=${sort}&order=${order}`);
  if (table.dataset.request !== request) return;  // a later click or poll asked for another order
  const body = table.querySelector("tbody");
  body.replaceChildren();
  for (const t of page.items) {
    const trained = t.state === "complete" || t.state === "stopped";
    body.append(row([t.number, t.state === "stopped" ? "stopped early" : t.state,
      originLabel(t.origin), trained ? fmt(t.accuracy) : "–", fmt(t.latency_ms, 3),
      t.params === null ? "–" : t.params.toLocaleString(), t.on_front ? "yes" : "", t.worker || "", t.error || ""]));
  }
  for (const th of table.querySelectorAll("th[data-sort]")) {
    th.classList.toggle("sorted", th.dataset.sort === sort);
    th.onclick = () => {  // reads the table's state at click time: a second click may come before the first's reply
      const same = th.dataset.sort === (table.dataset.sort || "number");
      table.dataset.order = same && (table.dataset.order || "asc") === "asc" ? "desc" : "asc";
      table.dataset.sort = th.dataset.sort;
      trialTable(jobId).catch(showError);
    };
  }
}

const BOUND_COLOURS = { overhead: "#7f8c8d", compute: "#4a6fa5", memory: "#e67e22", cpu: "#c0392b" };
const BOUND_NAMES = { overhead: "invoke + I/O overhead", compute: "compute", memory: "parameter streaming",
  cpu: "CPU fallback" };

function boundOf(l) {
  // The device's fixed invoke+io row is memory-bound in the model's terms, but it is overhead, not streaming.
  return l.op === "overhead" ? "overhead" : l.bound;
}

function latencyBars(lat) {
  // Horizontal bars as thick scatter lines, one trace per colour: Plotly's gl2d bundle has no bar trace.
  // Rows are numbered (named by tick labels); invisible markers at the bar ends carry the hover text.
  const traces = {};
  lat.forEach((l, i) => {
    const colour = BOUND_COLOURS[boundOf(l)] || "#888";
    const t = traces[colour] ||= { type: "scatter", mode: "lines", x: [], y: [], hoverinfo: "skip",
      line: { color: colour, width: 10 } };
    t.x.push(0, l.ms, null);
    t.y.push(i, i, null);
  });
  const ends = { type: "scatter", mode: "markers", x: lat.map((l) => l.ms), y: lat.map((l, i) => i),
    customdata: lat.map((l) => l.name), text: lat.map((l) => BOUND_NAMES[boundOf(l)] || l.bound),
    marker: { size: 12, opacity: 0 },
    hovertemplate: "%{customdata}: %{x:.4f} ms (%{text})<extra></extra>" };
  return [...Object.values(traces), ends];
}

async function viewCandidate(jobId, cid) {
  const c = await getJson(`/jobs/${jobId}/candidates/${cid}`);
  show("view-candidate");
  $("#candidate-title").textContent = `Candidate ${c.id} (job ${c.job_id})`;
  $("#candidate-arch").textContent = c.arch;
  const dl = $("#candidate-summary");
  dl.replaceChildren();
  const facts = [["status", c.estimated ? `${c.status} (accuracy ESTIMATED, not trained)` : c.status],
    ["accuracy", fmt(c.accuracy)], ["int8 accuracy", fmt(c.int8_accuracy)],
    ["on the host CPU", c.cpu_fraction ? `${(100 * c.cpu_fraction).toFixed(0)}% of the latency` : "none"],
    ["proposed by", originLabel(c.origin)],
    ["latency (ms)", fmt(c.latency_ms, 3) + (c.latency_interval_pct == null ? "" : ` ± ${c.latency_interval_pct.toFixed(0)}%`)],
    ["latency model", c.latency_profile + (c.latency_extrapolated
      ? ` (extrapolated: ${c.latency_extrapolation.join("; ")})` : "")],
    ["params", c.params.toLocaleString()], ["MACs", c.macs.toLocaleString()],
    ["on front", c.on_front ? "yes" : "no"]];
  for (const [k, v] of facts) dl.append(el("dt", k), el("dd", v));
  const body = $("#layer-table tbody");
  body.replaceChildren();
  for (const l of c.layers) {
    body.append(row([l.name, l.op, l.output_shape.join("x"), `${l.kernel}/${l.stride}`, l.params.toLocaleString(),
      l.macs.toLocaleString()]));
  }
  const lat = c.latency_layers;
  Plotly.react($("#latency-plot"), latencyBars(lat), {
    margin: { t: 10, l: 80, r: 10, b: 40 }, showlegend: false, hovermode: "closest",
    xaxis: { title: { text: "ms" }, rangemode: "tozero" },
    yaxis: { tickvals: lat.map((l, i) => i), ticktext: lat.map((l) => l.name), range: [lat.length - 0.5, -0.5],
      zeroline: false },
    height: Math.max(300, 16 * lat.length) }, { displaylogo: false });
  const button = $("#download-tflite");
  button.disabled = !c.has_tflite;
  button.title = c.has_tflite ? "" : noTfliteReason(c);
  $("#download-reason").textContent = button.title;
  button.onclick = () => download(c).catch((e) => { $("#download-error").textContent = e.message; });
  const resegment = () => showSegments(c.arch).catch((e) => { $("#segment-error").textContent = e.message; });
  $("#segment-devices").onchange = resegment;
  $("#segment-strategy").onchange = resegment;
  resegment();
}

async function showSegments(arch) {
  // The candidate cut into pipeline segments over several Edge TPUs, priced by the latency model.
  const body = { arch, devices: Number($("#segment-devices").value), strategy: $("#segment-strategy").value };
  $("#segment-error").textContent = "";
  const cut = await (await api("/latency/segment", { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" } })).json();
  const fewer = cut.devices_used < cut.devices
    ? `uses ${cut.devices_used} of ${cut.devices} TPUs (only ${cut.devices_used - 1} place(s) to cut); ` : "";
  $("#segment-summary").textContent = `${fewer}end-to-end ${fmt(cut.end_to_end_ms, 3)} ms, slowest stage `
    + `${fmt(cut.slowest_stage_ms, 3)} ms: ${Math.round(cut.throughput_per_s).toLocaleString()} inferences/s`;
  const kib = (bytes, d = 0) => (bytes / 1024).toFixed(d);
  $("#segment-table tbody").replaceChildren(...cut.segments.map((s) => row([String(s.index),
    `${s.start}-${s.stop - 1}`, `${s.first_layer} .. ${s.last_layer}`, kib(s.param_bytes),
    kib(s.streamed_param_bytes), kib(s.input_bytes, 1), fmt(s.latency_ms, 3)])));
}

function noTfliteReason(c) {
  // Why a candidate has no int8 file: say it next to the greyed button, not only in a tooltip.
  if (c.estimated) return "no int8 file: this job estimates accuracy (scorer: estimate), nothing is trained";
  if (c.status === "infeasible") return "no int8 file: the candidate breaks a constraint and is never trained";
  if (c.stopped_early) return "no int8 file: training was stopped early (it could not reach the front)";
  if (c.status === "trained") return "no int8 file: the job ran with export_int8 off";
  return `no int8 file: the candidate is ${c.status}`;
}

async function saveBlob(path, filename) {
  // A plain link cannot carry the bearer token: fetch the file, then hand the browser a blob URL.
  const blob = await (await api(path)).blob();
  const url = URL.createObjectURL(blob);
  const a = el("a", null, { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function download(c) {
  return saveBlob(`/jobs/${c.job_id}/candidates/${c.id}/tflite`, `candidate_${c.id}.tflite`);
}

async function viewCompare(ids) {
  show("view-compare");
  $("#compare-ids").value = ids.join(",");
  if (!ids.length) return;
  const [fronts, jobs] = await Promise.all([Promise.all(ids.map((id) => getJson(`/jobs/${id}/front`))),
    Promise.all(ids.map((id) => getJson(`/jobs/${id}`)))]);
  // Legend entries by name (the id beside it); estimator jobs dotted and labelled.
  const label = (k) => `${jobs[k].name ? `${jobs[k].name} (job ${ids[k]})` : `job ${ids[k]}`}`
    + (jobs[k].estimated ? " · estimated accuracy" : "");
  const traces = fronts.map((f, k) => ({
    type: "scattergl", mode: "lines+markers", name: label(k),
    line: { shape: "hv", dash: jobs[k].estimated ? "dot" : "solid" },
    x: f.items.map((m) => m.latency_ms), y: f.items.map((m) => m.accuracy), text: f.items.map((m) => m.arch),
    hovertemplate: "%{x:.3f} ms · %{y:.4f}<br>%{text}<extra>job " + ids[k] + "</extra>",
  }));
  const yTitle = jobs.some((j) => j.estimated) ? "accuracy (dotted: ESTIMATED, not trained)" : "accuracy";
  const members = fronts.flatMap((f) => f.items);
  await Plotly.react($("#compare-plot"), traces, paretoLayout("Pareto fronts", false, yTitle,
    axisRanges(members.map((m) => m.latency_ms), members.map((m) => m.accuracy))), { responsive: true, displaylogo: false });
}

// ---------- router ----------

function showMissing(parts, e) {
  // A job or candidate the API does not give this user (absent, or another user's: the same 404): say so,
  // instead of leaving the last page (or an empty one with live buttons) on screen.
  show("view-missing");
  const what = parts[2] === "candidates" ? `candidate ${parts[3]} in job ${parts[1]}` : `job ${parts[1]}`;
  $("#missing-title").textContent = `No ${what} (or not yours)`;
  $("#missing-detail").textContent = e.message;
}

function showError(e) {
  const main = document.querySelector(".view:not([hidden]) .error") || $("#login-error");
  main.textContent = e.message;
}

async function route() {
  stopPolling();
  state.routeSeq = (state.routeSeq || 0) + 1;
  const hash = location.hash || "#/jobs";
  if (!state.token && hash !== "#/login") { location.hash = "#/login"; return; }
  const [path, query] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean);
  try {
    if (parts[0] === "login") show("view-login");
    else if (parts[0] === "new") await viewNew();
    else if (parts[0] === "datasets") await viewDatasets();
    else if (parts[0] === "jobs" && parts[2] === "candidates" && parts[3]) {
      await viewCandidate(Number(parts[1]), Number(parts[3]));
    } else if (parts[0] === "jobs" && parts[1]) await viewJob(Number(parts[1]));
    else if (parts[0] === "compare") {
      const ids = new URLSearchParams(query || "").get("ids");
      await viewCompare(ids ? ids.split(",").map(Number).filter(Boolean) : []);
    } else await viewJobs();
  } catch (e) {
    if (e instanceof ApiError && e.status === 404 && parts[0] === "jobs" && parts[1]) showMissing(parts, e);
    else if (!(e instanceof ApiError && e.status === 401)) showError(e);
  }
}

function init() {
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#login-error").textContent = "";
    try {
      const me = await login($("#token").value.trim());
      $("#whoami").textContent = me.user;
      location.hash = "#/jobs";
    } catch (e) { $("#login-error").textContent = e.status === 401 ? "invalid token" : e.message; }
  });
  $("#logout").addEventListener("click", logout);
  $("#new-job-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#new-job-error").textContent = "";
    try {
      const job = await (await api("/jobs", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(specFromForm(ev.target)) })).json();
      location.hash = `#/jobs/${job.id}`;
    } catch (e) { $("#new-job-error").textContent = e.message; }
  });
  $("#dataset-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#dataset-error").textContent = "";
    const file = $("#dataset-file").files[0];
    if (!file) return;
    try { await uploadDataset(file); ev.target.reset(); await viewDatasets(); }
    catch (e) { $("#dataset-error").textContent = e.message; }
  });
  $("#compare-selected").addEventListener("click", () => {
    const ids = [...document.querySelectorAll(".compare-box:checked")].map((b) => b.value);
    location.hash = `#/compare?ids=${ids.join(",")}`;
  });
  $("#compare-go").addEventListener("click", () => { location.hash = `#/compare?ids=${$("#compare-ids").value}`; });
  window.addEventListener("hashchange", route);
  if (state.token) getJson("/me").then((me) => { $("#whoami").textContent = me.user; }).catch(() => {});
  route();
}

document.addEventListener("DOMContentLoaded", init);

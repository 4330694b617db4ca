// tinct serve: the page's behaviour. Uses only the server's HTTP API (api/models, api/colorize,
// and for color hints api/photos, api/photos/<id>/colorize and api/photos/<id>/suggest); no
// external scripts. Every text from the server or a file name is shown with textContent, never
// parsed as HTML.
"use strict";

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const el = {
    status: $("#server-status"), drop: $("#drop"), files: $("#files"), hint: $("#limits-hint"),
    model: $("#model"), decode: $("#decode"), decodeField: $("#decode-field"),
    samples: $("#samples"), samplesField: $("#samples-field"), format: $("#format"),
    style: $("#style"), styleField: $("#style-field"), styleName: $("#style-name"), styleClear: $("#style-clear"),
    note: $("#model-note"), hintsNote: $("#hints-note"), overall: $("#overall"), overallText: $("#overall-text"),
    downloadAll: $("#download-all"), clearAll: $("#clear-all"), results: $("#results"),
    template: $("#card-template"),
  };
  const state = {
    ready: false, models: {}, limits: null, style: null,
    queue: [], busy: false, total: 0, finished: 0, failed: 0, cards: [],
  };

  // ------------------------------------------------------------------ helpers
  function formatBytes(n) {
    if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MB`;
    if (n >= 1024) return `${Math.round(n / 1024)} KB`;
    return `${n} bytes`;
  }

  function base64ToBlob(data, type) {
    const bin = atob(data);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Blob([bytes], { type });
  }

  function setStatus(text, ok) {
    el.status.textContent = text;
    el.status.classList.toggle("ok", ok === true);
    el.status.classList.toggle("bad", ok === false);
  }

  function updateOverall() {
    el.overall.max = Math.max(1, state.total);
    el.overall.value = state.finished;
    if (state.total === 0) {
      el.overallText.textContent = "No photos yet.";
    } else {
      let text = `${state.finished} of ${state.total} done`;
      if (state.failed) text += ` (${state.failed} failed)`;
      if (state.finished < state.total) text += " — working…";
      el.overallText.textContent = text;
    }
    el.downloadAll.disabled = !state.cards.some((c) => c.dataset.state === "done");
    el.clearAll.disabled = state.busy || state.cards.length === 0;
  }

  // ------------------------------------------------------------------ models and options
  async function loadModels() {
    try {
      const resp = await fetch("api/models", { headers: { Accept: "application/json" } });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const info = await resp.json();
      state.limits = info.limits;
      el.model.textContent = "";
      for (const m of info.models) {
        state.models[m.name] = m;
        const opt = document.createElement("option");
        opt.value = m.name;
        opt.textContent = m.title && m.title !== m.name ? `${m.name} (${m.title})` : m.name;
        el.model.append(opt);
      }
      el.model.value = info.default;
      el.model.disabled = info.models.length < 2;
      el.samples.max = String(info.limits.max_samples);
      el.hint.textContent = `JPEG, PNG, TIFF, WebP or BMP · up to ${formatBytes(info.limits.max_upload_bytes)} and `
        + `${(info.limits.max_pixels / 1e6).toFixed(0)} megapixels each · processed on this computer`;
      updateOptions();
      state.ready = true;
      setStatus(`ready · ${info.models.length} model${info.models.length === 1 ? "" : "s"}`, true);
      pump();
    } catch (err) {
      setStatus(`cannot reach the tinct server (${err.message}); reload the page when it runs`, false);
    }
  }

  function currentModel() {
    return state.models[el.model.value];
  }

  function updateOptions() {
    const m = currentModel();
    if (!m) return;
    el.decode.textContent = "";
    for (const name of m.decode_methods) {
      const opt = document.createElement("option");
      opt.value = name;
      opt.textContent = name === m.default_decode ? `${name} (default)` : name;
      el.decode.append(opt);
    }
    el.decode.value = m.default_decode;
    el.decodeField.hidden = m.decode_methods.length < 2;
    el.samplesField.hidden = !m.samples;
    if (!m.samples) el.samples.value = "1";
    el.styleField.hidden = !m.style;
    if (!m.style) setStyle(null);
    el.note.textContent = m.description || `${m.arch} · ${m.head} head`;
    updateSamples();
  }

  function updateHintsNote() {
    const m = currentModel();
    if (!m) return;
    const takers = Object.values(state.models).filter((x) => x.hints).map((x) => x.name);
    let text;
    if (m.hints && sampleCount() > 1) {
      text = "Color hints work on one sample: set Samples to 1 to pin colors on the photos added next.";
    } else if (m.hints) {
      text = "This model takes color hints: click a colorized photo to pin a color, and it is colorized again.";
    } else if (takers.length) {
      text = `Color hints need a model that takes them: choose ${takers.join(" or ")} before adding photos.`;
    } else {
      text = "Color hints need a hint model (such as tinct-lite2-hints); this server offers none.";
    }
    el.hintsNote.textContent = text;
  }

  function sampleCount() {
    const max = state.limits ? state.limits.max_samples : 8;
    const n = Math.round(Number(el.samples.value));
    return Number.isFinite(n) ? Math.min(Math.max(n, 1), max) : 1;
  }

  function updateSamples() {
    const n = sampleCount();
    if (n > 1) {
      el.decode.value = "sample";
      el.decode.disabled = true;
    } else {
      el.decode.disabled = false;
    }
    updateHintsNote();
  }

  function setStyle(file) {
    state.style = file;
    el.styleName.textContent = file ? file.name : "none";
    el.styleClear.hidden = !file;
    if (!file) el.style.value = "";
  }

  function settings() {
    const m = currentModel();
    const s = {
      model: m ? m.name : "", samples: sampleCount(), format: el.format.value, style: state.style,
      hints: Boolean(m && m.hints),
    };
    if (m && m.decode_methods.length > 1) s.decode = el.decode.value;
    return s;
  }

  // ------------------------------------------------------------------ cards
  function makeCard(file) {
    const card = el.template.content.firstElementChild.cloneNode(true);
    $(".name", card).textContent = file.name;
    $(".name", card).title = file.name;
    const compare = $(".compare", card);
    $(".slider", card).addEventListener("input", (e) => {
      compare.style.setProperty("--pos", `${e.target.value}%`);
    });
    card.urls = [];
    el.results.prepend(card);
    state.cards.push(card);
    return card;
  }

  function setCardState(card, name, text) {
    card.dataset.state = name;
    $(".state", card).textContent = text;
  }

  function failCard(card, message) {
    setCardState(card, "error", "failed");
    const p = $(".error", card);
    p.textContent = message;
    p.hidden = false;
    state.finished += 1;
    state.failed += 1;
    updateOverall();
  }

  function grayFrom(img) {
    // the "before" fallback when the browser cannot show the upload (e.g. TIFF): the result's
    // lightness, which is the input's
    const canvas = document.createElement("canvas");
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const px = data.data;
    for (let i = 0; i < px.length; i += 4) {
      const y = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2];
      px[i] = px[i + 1] = px[i + 2] = y;
    }
    ctx.putImageData(data, 0, 0);
    return new Promise((resolve) => canvas.toBlob(resolve));
  }

  function setBefore(card, file) {
    const after = $(".after", card);
    const before = $(".before", card);
    const beforeUrl = URL.createObjectURL(file);
    card.urls.push(beforeUrl);
    before.addEventListener("error", () => {
      const fallback = () => grayFrom(after).then((blob) => {
        const url = URL.createObjectURL(blob);
        card.urls.push(url);
        before.src = url;
      });
      if (after.complete && after.naturalWidth) fallback();
      else after.addEventListener("load", fallback, { once: true });
    }, { once: true });
    before.src = beforeUrl;
  }

  function showResult(card, file, res) {
    const after = $(".after", card);
    const link = $(".download", card);
    const items = res.results.map((r) => {
      const url = URL.createObjectURL(base64ToBlob(r.data, r.media_type));
      card.urls.push(url);
      return { url, filename: r.filename, index: r.index };
    });
    const select = (k) => {
      after.src = items[k].url;
      link.href = items[k].url;
      link.download = items[k].filename;
      for (const b of card.querySelectorAll(".samples button")) {
        b.setAttribute("aria-pressed", String(Number(b.dataset.k) === k));
      }
    };
    setBefore(card, file);
    if (items.length > 1) {
      const strip = $(".samples", card);
      items.forEach((item, k) => {
        const b = document.createElement("button");
        b.type = "button";
        b.dataset.k = String(k);
        b.title = `sample ${item.index}`;
        const thumb = document.createElement("img");
        thumb.src = item.url;
        thumb.alt = `sample ${item.index}`;
        b.append(thumb);
        b.addEventListener("click", () => select(k));
        strip.append(b);
      });
      strip.hidden = false;
    }
    select(0);
    $(".compare", card).hidden = false;
    const secs = (res.elapsed_ms / 1000).toFixed(1);
    const samples = items.length > 1 ? ` · ${items.length} samples` : "";
    const notes = (res.warnings || []).map((w) => ` · ${w}`).join("");
    $(".meta", card).textContent = `${res.width}×${res.height} · ${res.model} · ${res.decode}${samples} · ${secs} s${notes}`;
    $(".card-foot", card).hidden = false;
    setCardState(card, "done", "done");
    state.finished += 1;
    updateOverall();
  }

  // ------------------------------------------------------------------ the queue
  function addFiles(fileList) {
    const files = Array.from(fileList || []);
    for (const file of files) {
      const card = makeCard(file);
      state.total += 1;
      if (state.limits && file.size > state.limits.max_upload_bytes) {
        failCard(card, `${file.name}: ${formatBytes(file.size)} is over the upload limit of `
          + `${formatBytes(state.limits.max_upload_bytes)}`);
        continue;
      }
      setCardState(card, "queued", "waiting");
      state.queue.push({ file, card, settings: settings() });
    }
    updateOverall();
    pump();
  }

  async function pump() {
    if (state.busy || !state.ready) return;
    state.busy = true;
    updateOverall();
    while (state.queue.length) {
      const job = state.queue.shift();
      await colorize(job);
    }
    state.busy = false;
    updateOverall();
  }

  async function colorize(job) {
    const { file, card, settings: s } = job;
    if (isHintJob(s)) {
      await colorizeEditable(job);
      return;
    }
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("model", s.model);
    if (s.decode) form.append("decode", s.decode);
    form.append("samples", String(s.samples));
    form.append("format", s.format);
    if (s.style) form.append("style", s.style, s.style.name);
    let resp;
    try {
      resp = await upload("api/colorize", form, card);
    } catch (err) {
      failCard(card, `${file.name}: ${err.message}`);
      return;
    }
    const body = resp.body;
    if (resp.status === 200 && body && Array.isArray(body.results)) {
      try {
        showResult(card, file, body);
      } catch (err) {
        failCard(card, `${file.name}: the result could not be shown (${err.message})`);
      }
    } else {
      const why = body && body.error ? body.error : `the server answered HTTP ${resp.status}`;
      failCard(card, `${file.name}: ${why}`);
    }
  }

  function upload(url, form, card) {
    // POST a form, showing the upload's progress on the card -> {status, body (JSON or null)};
    // rejects when the connection fails
    const bar = $(".bar", card);
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      let timer = null;
      let started = 0;
      const finish = () => {
        if (timer) clearInterval(timer);
      };
      xhr.open("POST", url);
      xhr.setRequestHeader("Accept", "application/json");
      setCardState(card, "uploading", "uploading 0%");
      bar.value = 0;
      xhr.upload.addEventListener("progress", (e) => {
        if (!e.lengthComputable) return;
        const pct = Math.round((100 * e.loaded) / e.total);
        bar.value = pct;
        setCardState(card, "uploading", `uploading ${pct}%`);
      });
      xhr.upload.addEventListener("load", () => {
        started = performance.now();
        bar.removeAttribute("value"); // indeterminate while the server works
        setCardState(card, "working", "colorizing…");
        timer = setInterval(() => {
          const secs = ((performance.now() - started) / 1000).toFixed(1);
          setCardState(card, "working", `colorizing… ${secs} s`);
        }, 250);
      });
      xhr.addEventListener("load", () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (_) {
          body = null;
        }
        finish();
        resolve({ status: xhr.status, body });
      });
      xhr.addEventListener("error", () => {
        finish();
        reject(new Error("the connection to the server failed"));
      });
      xhr.send(form);
    });
  }

  // ------------------------------------------------------------------ color hints
  // A photo colorized with a hint model stays on the server (api/photos); each change of its
  // hints colorizes it again (api/photos/<id>/colorize) a moment later, without sending the
  // photo again (only if the server has let it go: then once, and the edit goes on). Points
  // are buttons over the photo: Tab to one, arrows move it, Delete removes it, Ctrl+Z undoes.
  const REFRESH_MS = 350;
  const HISTORY_MAX = 200;
  const HEX = /^#?([0-9a-f]{6}|[0-9a-f]{3})$/i;
  const MOVES = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

  function isHintJob(s) {
    return s.hints && s.samples === 1 && !s.style;
  }

  function hexColor(text) {
    const m = typeof text === "string" ? HEX.exec(text.trim()) : null;
    if (!m) return null;
    const digits = m[1].length === 3 ? m[1].split("").map((c) => c + c).join("") : m[1];
    return `#${digits.toLowerCase()}`;
  }

  function hintList(hs, skip = -1) {
    return hs.points.filter((_, i) => i !== skip).map((p) => ({ x: p.x, y: p.y, color: p.color }));
  }

  function maxHints() {
    return state.limits ? state.limits.max_hints : 256;
  }

  async function errorOf(resp) {
    try {
      const body = await resp.json();
      if (body && body.error) return body.error;
    } catch (_) {
      // not JSON: say the status
    }
    return `the server answered HTTP ${resp.status}`;
  }

  async function colorizeEditable(job) {
    const { file, card, settings: s } = job;
    card.hint = {
      file, model: s.model, decode: s.decode, format: s.format, id: null, width: 0, height: 0, stem: "photo",
      points: [], selected: -1, history: [], timer: null, busy: false, again: false, url: null, keeping: null,
      colorEditing: false, moving: false, drag: null, paletteFor: null, paletteSeq: 0,
    };
    try {
      await keepPhoto(card, true);
      setCardState(card, "working", "colorizing…");
      const res = await requestResult(card);
      showEditable(card, file, res);
    } catch (err) {
      failCard(card, `${file.name}: ${err.message}`);
    }
  }

  async function keepPhoto(card, withProgress) {
    // send the photo to be kept on the server: its id and size go into card.hint
    const hs = card.hint;
    const form = new FormData();
    form.append("image", hs.file, hs.file.name);
    form.append("model", hs.model);
    let status;
    let body = null;
    if (withProgress) {
      ({ status, body } = await upload("api/photos", form, card));
    } else {
      const resp = await fetch("api/photos", { method: "POST", body: form, headers: { Accept: "application/json" } });
      status = resp.status;
      body = await resp.json().catch(() => null);
    }
    if (status !== 200 || !body || !body.id) {
      throw new Error(body && body.error ? body.error : `the server answered HTTP ${status}`);
    }
    Object.assign(hs, { id: body.id, width: body.width, height: body.height });
  }

  function keepAgain(card, staleId) {
    // the server let the photo go (404): send it once more, once for every request that noticed
    const hs = card.hint;
    if (hs.id !== staleId) return Promise.resolve();
    if (!hs.keeping) hs.keeping = keepPhoto(card, false).finally(() => { hs.keeping = null; });
    return hs.keeping;
  }

  async function photoCall(card, action, payload) {
    const hs = card.hint;
    for (let attempt = 0; ; attempt += 1) {
      const id = hs.id;
      const resp = await fetch(`api/photos/${encodeURIComponent(id)}/${action}`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload),
      });
      if (resp.status === 404 && attempt === 0) {
        await keepAgain(card, id);
        continue;
      }
      if (!resp.ok) throw new Error(await errorOf(resp));
      return resp;
    }
  }

  async function requestResult(card) {
    const hs = card.hint;
    const payload = { hints: hintList(hs), model: hs.model, format: hs.format };
    if (hs.decode) payload.decode = hs.decode;
    const resp = await photoCall(card, "colorize", payload);
    const blob = await resp.blob();
    const named = /filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") || "");
    return {
      blob, filename: named ? named[1] : `photo-color.${hs.format === "jpeg" ? "jpg" : "png"}`,
      model: resp.headers.get("X-Tinct-Model") || hs.model, decode: resp.headers.get("X-Tinct-Decode") || "",
      hints: payload.hints.length, warning: resp.headers.get("X-Tinct-Warning"),
    };
  }

  function setAfter(card, res) {
    // show a new result: the image, its download link, its line of facts
    const hs = card.hint;
    const url = URL.createObjectURL(res.blob);
    card.urls.push(url);
    $(".after", card).src = url;
    const link = $(".download", card);
    link.href = url;
    link.download = res.filename;
    if (hs.url) {
      URL.revokeObjectURL(hs.url);
      card.urls = card.urls.filter((u) => u !== hs.url);
    }
    hs.url = url;
    hs.stem = res.filename.replace(/-color\.[a-z]+$/, "");
    const notes = res.warning ? ` · ${res.warning}` : "";
    $(".meta", card).textContent = `${hs.width}×${hs.height} · ${res.model} · ${res.decode} · `
      + `${res.hints} hint${res.hints === 1 ? "" : "s"}${notes}`;
    card.dataset.version = String(Number(card.dataset.version || 0) + 1);
  }

  function showEditable(card, file, res) {
    setBefore(card, file);
    setAfter(card, res);
    const compare = $(".compare", card);
    compare.classList.add("editing");
    compare.hidden = false;
    $(".points", card).hidden = false;
    $(".hint-tools", card).hidden = false;
    bindHints(card);
    updateTools(card);
    $(".card-foot", card).hidden = false;
    setCardState(card, "done", "done");
    card.dataset.busy = "false";
    state.finished += 1;
    updateOverall();
  }

  function setBusy(card, text) {
    card.dataset.busy = text ? "true" : "false";
    $(".state", card).textContent = text || "done";
  }

  function hintError(card, message) {
    const p = $(".error", card);
    p.textContent = message || "";
    p.hidden = !message;
  }

  // -- changes and the refresh that follows them
  function pushHistory(hs) {
    hs.history.push({ points: hs.points.map((p) => ({ ...p })), selected: hs.selected });
    if (hs.history.length > HISTORY_MAX) hs.history.shift();
  }

  function changed(card) {
    renderPoints(card);
    updateTools(card);
    const hs = card.hint;
    clearTimeout(hs.timer);
    setBusy(card, "updating…");
    hs.timer = setTimeout(() => {
      hs.timer = null;
      refresh(card);
    }, REFRESH_MS);
  }

  async function refresh(card) {
    const hs = card.hint;
    if (!card.isConnected) return;
    if (hs.busy) {
      hs.again = true;
      return;
    }
    hs.busy = true;
    setBusy(card, "updating…");
    try {
      setAfter(card, await requestResult(card));
      hintError(card, null);
    } catch (err) {
      hintError(card, err.message);
    }
    hs.busy = false;
    if (hs.again) {
      hs.again = false;
      refresh(card);
    } else if (!hs.timer) {
      setBusy(card, null);
    }
    loadPalette(card);
  }

  // -- points
  function renderPoints(card) {
    const hs = card.hint;
    const layer = $(".points", card);
    let buttons = layer.querySelectorAll(".point");
    for (let i = buttons.length; i < hs.points.length; i++) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "point";
      layer.append(b);
    }
    for (let i = hs.points.length; i < buttons.length; i++) buttons[i].remove();
    buttons = layer.querySelectorAll(".point");
    buttons.forEach((b, i) => {
      const p = hs.points[i];
      b.dataset.i = String(i);
      b.style.left = `${((p.x + 0.5) / hs.width) * 100}%`;
      b.style.top = `${((p.y + 0.5) / hs.height) * 100}%`;
      b.style.setProperty("--c", p.color);
      b.setAttribute("aria-pressed", String(i === hs.selected));
      const label = `color hint ${i + 1} of ${hs.points.length} at ${p.x}, ${p.y}: ${p.color}`;
      b.setAttribute("aria-label", label);
      b.title = label;
    });
  }

  function pointButton(card, i) {
    return $(".points", card).querySelectorAll(".point")[i] || null;
  }

  function updateTools(card) {
    const hs = card.hint;
    const p = hs.points[hs.selected];
    const color = $(".hint-color", card);
    color.disabled = !p;
    if (p && color.value !== p.color) color.value = p.color;
    $(".hint-delete", card).disabled = !p;
    $(".hint-undo", card).disabled = hs.history.length === 0;
    $(".hint-save", card).disabled = hs.points.length === 0;
    const n = hs.points.length;
    $(".hint-status", card).textContent = n ? `${n} hint${n === 1 ? "" : "s"}` : "no hints yet";
    if (!p) $(".palette", card).textContent = "";
    for (const s of card.querySelectorAll(".swatch")) {
      s.setAttribute("aria-pressed", String(Boolean(p) && s.dataset.color === p.color));
    }
  }

  function select(card, i) {
    const hs = card.hint;
    hs.selected = i;
    hs.colorEditing = false;
    renderPoints(card);
    updateTools(card);
    loadPalette(card);
  }

  function pointAt(card, e) {
    // a pointer event's place on the photo, in whole pixels of the original
    const hs = card.hint;
    const r = $(".points", card).getBoundingClientRect();
    const clamp = (v, hi) => Math.min(hi - 1, Math.max(0, Math.floor(v)));
    return {
      x: clamp(((e.clientX - r.left) / r.width) * hs.width, hs.width),
      y: clamp(((e.clientY - r.top) / r.height) * hs.height, hs.height),
    };
  }

  function colorAt(card, x, y) {
    // the result's color at a pixel: a new point starts as the color already there
    try {
      const c = document.createElement("canvas");
      c.width = 1;
      c.height = 1;
      const ctx = c.getContext("2d");
      ctx.drawImage($(".after", card), x, y, 1, 1, 0, 0, 1, 1);
      const d = ctx.getImageData(0, 0, 1, 1).data;
      return `#${[d[0], d[1], d[2]].map((v) => v.toString(16).padStart(2, "0")).join("")}`;
    } catch (_) {
      return "#808080";
    }
  }

  function addPoint(card, x, y) {
    const hs = card.hint;
    if (hs.points.length >= maxHints()) {
      hintError(card, `at most ${maxHints()} hints per photo`);
      return;
    }
    pushHistory(hs);
    hs.points.push({ x, y, color: colorAt(card, x, y) });
    hs.selected = hs.points.length - 1;
    hs.colorEditing = false;
    changed(card);
    loadPalette(card);
    const b = pointButton(card, hs.selected);
    if (b) b.focus({ preventScroll: true });
  }

  function deletePoint(card) {
    const hs = card.hint;
    const i = hs.selected;
    if (i < 0) return;
    pushHistory(hs);
    hs.points.splice(i, 1);
    hs.selected = Math.min(i, hs.points.length - 1);
    changed(card);
    loadPalette(card);
    const b = pointButton(card, hs.selected);
    (b || $(".hint-add", card)).focus({ preventScroll: true });
  }

  function undo(card) {
    const hs = card.hint;
    const snap = hs.history.pop();
    if (!snap) return;
    hs.points = snap.points;
    hs.selected = Math.min(snap.selected, hs.points.length - 1);
    hs.colorEditing = false;
    hs.moving = false;
    changed(card);
    loadPalette(card);
    if (!card.contains(document.activeElement)) {
      const b = pointButton(card, hs.selected);
      (b || $(".hint-undo", card)).focus({ preventScroll: true });
    }
  }

  function setColor(card, color) {
    const hs = card.hint;
    const p = hs.points[hs.selected];
    if (!p || p.color === color) return;
    pushHistory(hs);
    p.color = color;
    hs.colorEditing = false;
    changed(card);
  }

  function movePoint(card, e) {
    // arrow keys: 1% of the photo per press (at least a pixel), 10% with Shift
    const hs = card.hint;
    const i = Number(e.target.dataset.i);
    const [dx, dy] = MOVES[e.key];
    if (hs.selected !== i) select(card, i);
    if (!hs.moving) {
      pushHistory(hs);
      hs.moving = true;
    }
    const step = (size) => Math.max(1, Math.round(size * (e.shiftKey ? 0.1 : 0.01)));
    const p = hs.points[i];
    p.x = Math.min(hs.width - 1, Math.max(0, p.x + dx * step(hs.width)));
    p.y = Math.min(hs.height - 1, Math.max(0, p.y + dy * step(hs.height)));
    changed(card);
  }

  // -- the palette: the colors the model finds likeliest at the selected point
  async function loadPalette(card) {
    const hs = card.hint;
    const p = hs.points[hs.selected];
    if (!p) {
      hs.paletteFor = null;
      $(".palette", card).textContent = "";
      return;
    }
    const key = `${hs.selected}:${p.x},${p.y}`;
    if (key === hs.paletteFor) return;
    hs.paletteFor = key;
    const token = ++hs.paletteSeq;
    try {
      const resp = await photoCall(card, "suggest", {
        x: p.x, y: p.y, k: 6, model: hs.model, hints: hintList(hs, hs.selected),
      });
      const body = await resp.json();
      if (token === hs.paletteSeq) renderPalette(card, body.colors || []);
    } catch (err) {
      if (token === hs.paletteSeq) {
        hs.paletteFor = null;
        hintError(card, err.message);
      }
    }
  }

  function renderPalette(card, colors) {
    const palette = $(".palette", card);
    palette.textContent = "";
    for (const c of colors) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "swatch";
      b.dataset.color = c.color;
      b.style.setProperty("--c", c.color);
      const likely = `${Math.round(c.probability * 100)}% likely`;
      b.title = `${c.color} · ${likely}`;
      b.setAttribute("aria-label", `use ${c.color} (${likely})`);
      palette.append(b);
    }
    updateTools(card);
  }

  // -- saving and loading hints (the JSON of tinct.hints: pixels of the original photo)
  function saveHints(card) {
    const hs = card.hint;
    const text = `${JSON.stringify(hintList(hs), null, 2)}\n`;
    const url = URL.createObjectURL(new Blob([text], { type: "application/json" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `${hs.stem}.hints.json`; // the name `tinct colorize --hints auto` looks for
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 30000);
  }

  function parseHintFile(data, width, height) {
    // as tinct.hints.parse_hints: a list (or {"hints": list}) of {x, y, color}; x and y in
    // pixels, or fractions of the size when both are <= 1 and one is not whole
    const list = data && !Array.isArray(data) && Array.isArray(data.hints) ? data.hints : data;
    if (!Array.isArray(list)) throw new Error('hints must be a JSON list such as [{"x": 120, "y": 45, "color": "#3050c0"}]');
    return list.map((item, i) => {
      const where = `hint ${i + 1}`;
      if (!item || typeof item !== "object" || !("x" in item) || !("y" in item) || !("color" in item)) {
        throw new Error(`${where}: needs "x", "y" and "color"`);
      }
      let { x, y } = item;
      if (!Number.isFinite(x) || !Number.isFinite(y)) throw new Error(`${where}: x and y must be numbers`);
      const color = hexColor(item.color);
      if (!color) throw new Error(`${where}: color ${JSON.stringify(item.color)} is not an sRGB hex color such as "#3050c0"`);
      if (x >= 0 && x <= 1 && y >= 0 && y <= 1 && !(Number.isInteger(x) && Number.isInteger(y))) {
        x *= width;
        y *= height;
      }
      if (!(x >= 0 && x < width + 0.5 && y >= 0 && y < height + 0.5)) {
        throw new Error(`${where}: (${item.x}, ${item.y}) is outside the ${width}x${height} photo`);
      }
      return { x: Math.min(width - 1, Math.round(x)), y: Math.min(height - 1, Math.round(y)), color };
    });
  }

  async function loadHints(card, file) {
    const hs = card.hint;
    try {
      const points = parseHintFile(JSON.parse(await file.text()), hs.width, hs.height);
      if (points.length > maxHints()) throw new Error(`${points.length} hints; at most ${maxHints()} per photo`);
      pushHistory(hs);
      hs.points = points;
      hs.selected = -1;
      hintError(card, null);
      changed(card);
      loadPalette(card);
      $(".hint-status", card).textContent = `${points.length} hint${points.length === 1 ? "" : "s"} from ${file.name}`;
    } catch (err) {
      hintError(card, `${file.name}: ${err.message}`);
    }
  }

  // -- events of one card's hint tools
  function bindHints(card) {
    const hs = card.hint;
    const layer = $(".points", card);
    const compare = $(".compare", card);
    layer.addEventListener("click", (e) => {
      if (e.target !== layer) return;
      const { x, y } = pointAt(card, e);
      addPoint(card, x, y);
    });
    layer.addEventListener("pointerdown", (e) => {
      const b = e.target.closest(".point");
      if (!b || e.button !== 0) return;
      e.preventDefault();
      b.focus({ preventScroll: true });
      const i = Number(b.dataset.i);
      if (hs.selected !== i) select(card, i);
      b.setPointerCapture(e.pointerId);
      hs.drag = { i, button: b, pointer: e.pointerId, x0: e.clientX, y0: e.clientY, moved: false };
    });
    layer.addEventListener("pointermove", (e) => {
      const d = hs.drag;
      if (!d || e.pointerId !== d.pointer) return;
      if (!d.moved && Math.hypot(e.clientX - d.x0, e.clientY - d.y0) < 3) return;
      if (!d.moved) {
        d.moved = true;
        pushHistory(hs);
        d.button.classList.add("dragging");
      }
      Object.assign(hs.points[d.i], pointAt(card, e));
      changed(card);
    });
    const drop = (e) => {
      const d = hs.drag;
      if (!d || e.pointerId !== d.pointer) return;
      hs.drag = null;
      d.button.classList.remove("dragging");
    };
    layer.addEventListener("pointerup", drop);
    layer.addEventListener("pointercancel", drop);
    layer.addEventListener("click", (e) => {
      const b = e.target.closest(".point");
      if (b && Number(b.dataset.i) !== hs.selected) select(card, Number(b.dataset.i));
    });
    layer.addEventListener("keydown", (e) => {
      if (!e.target.classList.contains("point")) return;
      if (MOVES[e.key] && !e.ctrlKey && !e.metaKey && !e.altKey) {
        e.preventDefault();
        movePoint(card, e);
      } else if (e.key === "Escape") {
        select(card, -1);
      }
    });
    layer.addEventListener("keyup", (e) => {
      if (MOVES[e.key]) hs.moving = false;
    });
    card.addEventListener("keydown", (e) => {
      const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName);
      if ((e.ctrlKey || e.metaKey) && !e.shiftKey && !e.altKey && e.key.toLowerCase() === "z") {
        e.preventDefault();
        undo(card);
      } else if ((e.key === "Delete" || e.key === "Backspace") && !typing && hs.selected >= 0) {
        e.preventDefault();
        deletePoint(card);
      }
    });
    const color = $(".hint-color", card);
    color.addEventListener("input", () => {
      const p = hs.points[hs.selected];
      const c = hexColor(color.value);
      if (!p || !c || c === p.color) return;
      if (!hs.colorEditing) pushHistory(hs);
      hs.colorEditing = true;
      p.color = c;
      changed(card);
    });
    color.addEventListener("change", () => { hs.colorEditing = false; });
    $(".palette", card).addEventListener("click", (e) => {
      const s = e.target.closest(".swatch");
      if (s) setColor(card, s.dataset.color);
    });
    $(".hint-add", card).addEventListener("click", () => {
      addPoint(card, Math.floor(hs.width / 2), Math.floor(hs.height / 2));
    });
    $(".hint-delete", card).addEventListener("click", () => deletePoint(card));
    $(".hint-undo", card).addEventListener("click", () => undo(card));
    $(".hint-save", card).addEventListener("click", () => saveHints(card));
    const load = $(".hint-load", card);
    load.addEventListener("change", () => {
      const file = load.files[0];
      load.value = "";
      if (file) loadHints(card, file);
    });
    const toggle = $(".hint-compare", card);
    toggle.addEventListener("click", () => {
      const comparing = toggle.getAttribute("aria-pressed") !== "true";
      toggle.setAttribute("aria-pressed", String(comparing));
      compare.classList.toggle("editing", !comparing);
      layer.hidden = comparing;
    });
  }

  // ------------------------------------------------------------------ downloads
  async function downloadAll() {
    const links = state.cards.filter((c) => c.dataset.state === "done").map((c) => $(".download", c));
    for (const a of links) {
      a.click();
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  function clearAll() {
    if (state.busy) return;
    for (const card of state.cards) {
      if (card.hint) clearTimeout(card.hint.timer);
      for (const url of card.urls) URL.revokeObjectURL(url);
      card.remove();
    }
    state.cards = [];
    state.total = state.finished = state.failed = 0;
    updateOverall();
  }

  // ------------------------------------------------------------------ events
  function bind() {
    el.files.addEventListener("change", () => {
      addFiles(el.files.files);
      el.files.value = "";
    });
    el.drop.addEventListener("click", (e) => {
      if (e.target === el.drop || e.target.tagName === "P") el.files.click();
    });
    el.drop.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        el.files.click();
      }
    });
    for (const name of ["dragenter", "dragover"]) {
      el.drop.addEventListener(name, (e) => {
        e.preventDefault();
        el.drop.classList.add("over");
      });
    }
    el.drop.addEventListener("dragleave", () => el.drop.classList.remove("over"));
    // a photo dropped anywhere is taken, never opened by the browser in place of the page
    document.addEventListener("dragover", (e) => e.preventDefault());
    document.addEventListener("drop", (e) => {
      e.preventDefault();
      el.drop.classList.remove("over");
      if (e.dataTransfer && e.dataTransfer.files.length) addFiles(e.dataTransfer.files);
    });
    el.model.addEventListener("change", updateOptions);
    el.samples.addEventListener("input", updateSamples);
    el.samples.addEventListener("change", () => {
      el.samples.value = String(sampleCount());
      updateSamples();
    });
    el.style.addEventListener("change", () => {
      const file = el.style.files[0] || null;
      if (file && state.limits && file.size > state.limits.max_upload_bytes) {
        setStyle(null);
        el.styleName.textContent = `${file.name} is over ${formatBytes(state.limits.max_upload_bytes)}`;
        return;
      }
      setStyle(file);
    });
    el.styleClear.addEventListener("click", () => setStyle(null));
    el.downloadAll.addEventListener("click", downloadAll);
    el.clearAll.addEventListener("click", clearAll);
  }

  bind();
  updateOverall();
  loadModels();
})();

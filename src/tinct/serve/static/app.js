// tinct serve: the page's behaviour. Uses only the server's HTTP API (api/models, api/colorize,
// api/health); no external scripts. Every text from the server or a file name is shown with
// textContent, never parsed as HTML.
"use strict";

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const el = {
    status: $("#server-status"), drop: $("#drop"), files: $("#files"), hint: $("#limits-hint"),
    model: $("#model"), decode: $("#decode"), decodeField: $("#decode-field"),
    samples: $("#samples"), samplesField: $("#samples-field"), format: $("#format"),
    style: $("#style"), styleField: $("#style-field"), styleName: $("#style-name"), styleClear: $("#style-clear"),
    note: $("#model-note"), overall: $("#overall"), overallText: $("#overall-text"),
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
  }

  function setStyle(file) {
    state.style = file;
    el.styleName.textContent = file ? file.name : "none";
    el.styleClear.hidden = !file;
    if (!file) el.style.value = "";
  }

  function settings() {
    const m = currentModel();
    const s = { model: m ? m.name : "", samples: sampleCount(), format: el.format.value, style: state.style };
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

  function showResult(card, file, res) {
    const after = $(".after", card);
    const before = $(".before", card);
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

  function colorize(job) {
    const { file, card, settings: s } = job;
    const bar = $(".bar", card);
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("model", s.model);
    if (s.decode) form.append("decode", s.decode);
    form.append("samples", String(s.samples));
    form.append("format", s.format);
    if (s.style) form.append("style", s.style, s.style.name);
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      let timer = null;
      let started = 0;
      const finish = () => {
        if (timer) clearInterval(timer);
        resolve();
      };
      xhr.open("POST", "api/colorize");
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
        if (xhr.status === 200 && body && Array.isArray(body.results)) {
          try {
            showResult(card, file, body);
          } catch (err) {
            failCard(card, `${file.name}: the result could not be shown (${err.message})`);
          }
        } else {
          const why = body && body.error ? body.error : `the server answered HTTP ${xhr.status}`;
          failCard(card, `${file.name}: ${why}`);
        }
        finish();
      });
      xhr.addEventListener("error", () => {
        failCard(card, `${file.name}: the connection to the server failed`);
        finish();
      });
      xhr.send(form);
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

/* minidraw's live pages: a caption editor that draws with the shipped models in the browser (onnxruntime-web,
 * WebAssembly), and a filterbank explorer. Plain JavaScript, no build step; every file it loads sits beside it in
 * the built book's _static/live/ (book/_ext/minidraw_live.py writes them). An element
 *   <div class="minidraw-live" data-model="aligndraw-mnist">...static fallback text...</div>
 * becomes an editor, and
 *   <div class="minidraw-filterbank" data-n="8">...</div>
 * an explorer. Without JavaScript, or without WebAssembly, the fallback text stays and the static figures
 * under it are the page. window.minidrawLive is the same code for the browser tests. */
(function () {
  "use strict";
  const BASE = new URL(".", document.currentScript.src).href;           // .../_static/live/
  const TOKEN = /[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]/g;                   // minidraw.text.tokenize
  const api = { timings: [], last: null };
  window.minidrawLive = api;

  // ---- onnxruntime-web, loaded once, only by a page that draws ----------------------------------------------
  // A page with editors loads ort.wasm.min.js in its head, before this file (the book's extension puts it
  // there), so the runtime is ready at once; otherwise it is fetched here. The WebAssembly runs in a worker
  // (proxy): compiling 14 MB of it and making the sessions do not hold up the page's own scripts.
  let ortPromise = null;
  function loadOrt() {
    if (ortPromise) return ortPromise;
    const ready = (ort) => {
      ort.env.wasm.wasmPaths = BASE + "ort/";
      ort.env.wasm.numThreads = 1;                 // threads need cross-origin isolation, which a static host lacks
      ort.env.wasm.proxy = true;
      performance.mark("minidraw:runtime");                               // marks: the browser test's timeline
      return ort;
    };
    ortPromise = new Promise((resolve, reject) => {
      if (typeof WebAssembly !== "object") {
        reject(new Error("this browser runs no WebAssembly"));
        return;
      }
      if (window.ort) {
        resolve(ready(window.ort));
        return;
      }
      const s = document.createElement("script");
      s.src = BASE + "ort/ort.wasm.min.js";
      s.onload = () => resolve(ready(window.ort));
      s.onerror = () => reject(new Error("this build of the book has no onnxruntime-web (built without Node.js)"));
      document.head.appendChild(s);
    });
    return ortPromise;
  }

  // The sessions are made one after another in page order, and the next starts only once the one before has
  // drawn (or after 2 s), so the first editor on the page draws first instead of queueing behind the others in
  // the one WebAssembly worker. A session is made from the model's URL: onnxruntime then sets up its runtime
  // (most of the time to a first drawing) before it fetches the model, not after.
  const models = {};
  const drawn = {};                                                      // name -> call after its first run
  let sessions = Promise.resolve();
  function loadModel(name) {
    if (!models[name]) {
      if (typeof WebAssembly !== "object") {
        models[name] = Promise.reject(new Error("this browser runs no WebAssembly"));
        models[name].catch(() => {});                                    // the editor reports it, not the console
        return models[name];
      }
      const meta = fetch(BASE + "models/" + name + ".json").then((r) => {
        if (!r.ok) throw new Error(`this build of the book lacks models/${name}.json (HTTP ${r.status})`);
        return r.json();
      });
      meta.catch(() => {});                                              // awaited below, after the session
      const first = new Promise((resolve) => { drawn[name] = resolve; });
      models[name] = sessions.then(async () => {
        const ort = await loadOrt();
        // the graph was simplified when the book was built (minidraw.export, simplify=True): nothing left to do
        const session = await ort.InferenceSession.create(BASE + "models/" + name + ".onnx",
                                                          { executionProviders: ["wasm"], graphOptimizationLevel: "disabled" });
        performance.mark("minidraw:session:" + name);
        const m = await meta;
        m.index = Object.fromEntries(m.words.map((w, i) => [w, i]));
        return { meta: m, session };
      });
      models[name].catch(() => {});                                      // the editor reports a failure, not the console
      sessions = models[name].then(() => Promise.race([first, new Promise((r) => setTimeout(r, 2000))]), () => {});
    }
    return models[name];
  }
  // The page's head names its models: start on them now, while the rest of the page loads.
  (document.currentScript.dataset.models || "").split(/\s+/).filter(Boolean).forEach(loadModel);

  // ---- captions: the vocabulary's checks, as minidraw.text.Vocabulary.encode makes them ----------------------
  function encode(meta, text) {
    const tokens = (text.toLowerCase().match(TOKEN) || []);
    if (!tokens.length) throw new Error("the caption has no words; give at least one word");
    const unknown = [...new Set(tokens.filter((t) => !(t in meta.index) || t === "<pad>"))].sort();
    if (unknown.length) {
      throw new Error("unknown word(s) " + unknown.map((w) => "'" + w + "'").join(", ") +
                      ". This vocabulary is closed; the known words are: " + meta.words.slice(1).join(" "));
    }
    if (tokens.length > meta.L) throw new Error(`the caption has ${tokens.length} words; this model reads at most ${meta.L}`);
    return tokens.map((t) => meta.index[t]);
  }

  // ---- noise: a seeded stream of N(0, 1) numbers (mulberry32 and Box–Muller) --------------------------------
  function normals(seed, n) {
    let a = seed >>> 0;
    const uniform = () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const r = Math.sqrt(-2 * Math.log(1 - uniform())), phi = 2 * Math.PI * uniform();
      out[i] = r * Math.cos(phi);
      if (i + 1 < n) out[i + 1] = r * Math.sin(phi);
    }
    return out;
  }

  // ---- one run: 8 samples of one caption ---------------------------------------------------------------------
  api.draw = async function (name, text, seed, temperature) {
    const { meta, session } = await loadModel(name);
    const start = performance.now();                                      // encoding, noise and the model
    const words = encode(meta, text);
    const { M, L, T, Z } = meta;
    const ids = new BigInt64Array(M * L);                                  // (M, L), padding 0 after the words
    for (let m = 0; m < M; m++) words.forEach((w, j) => { ids[m * L + j] = BigInt(w); });
    const eps = normals(seed, T * M * Z).map((v) => v * temperature);     // (T, M, Z): z_t = μ + σ τ ε
    const ort = window.ort;
    const noise = Array.from(eps);                                         // the worker takes eps's buffer
    let out;
    try {
      out = await session.run({ ids: new ort.Tensor("int64", ids, [M, L]),
                                eps: new ort.Tensor("float32", eps, [T, M, Z]) });
    } finally {
      drawn[name]();                                                       // the next model's session may start
    }
    const ms = performance.now() - start;
    performance.mark("minidraw:drawn:" + name);
    api.timings.push(ms);
    api.last = { name, text, seed, temperature, words, eps: noise, ms,
                 canvases: out.canvases.data, windows: out.windows.data, alpha: out.alpha.data };
    return api.last;
  };

  // ---- the editor --------------------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => (k === "class" ? (e.className = v) : e.setAttribute(k, v)));
    children.forEach((c) => e.append(c));
    return e;
  }

  function paint(ctx, meta, run, m, t, scale) {
    const { A, B, C, M, N } = meta;
    const image = ctx.createImageData(A, B);
    const base = ((t * M + m) * C) * B * A;                               // canvases (T, M, C, B, A)
    for (let y = 0; y < B; y++) {
      for (let x = 0; x < A; x++) {
        const p = (y * A + x) * 4;
        for (let c = 0; c < 3; c++) image.data[p + c] = 255 * run.canvases[base + (C === 3 ? c : 0) * B * A + y * A + x];
        image.data[p + 3] = 255;
      }
    }
    ctx.canvas.width = A; ctx.canvas.height = B;
    ctx.putImageData(image, 0, 0);
    const w = (m * meta.T + t) * 5;                                        // windows (M, T, 5): g_X g_Y σ² δ γ
    const gx = run.windows[w], gy = run.windows[w + 1], delta = run.windows[w + 3];
    const half = (N / 2 - 0.5) * delta;                                    // minidraw.viz.window_box
    ctx.strokeStyle = "red"; ctx.lineWidth = 0.6;
    ctx.strokeRect(gx - half - 1, gy - half - 1, 2 * half, 2 * half);
  }

  function editor(root) {
    const name = root.dataset.model;
    const status = el("div", { class: "mdl-status" }, "loading the model…");
    root.replaceChildren(status);
    root.dataset.state = "loading";
    loadModel(name).then(({ meta }) => {
      const scale = meta.A >= 48 ? 2 : 4;
      const template = el("select", { class: "mdl-template", "aria-label": "template" });
      meta.templates.forEach((parts, i) => template.append(el("option", { value: i },
        parts.map((p) => (typeof p === "string" ? p : "…")).join(" "))));
      const slots = el("span", { class: "mdl-slots" });
      const text = el("input", { class: "mdl-caption", type: "text", size: 60, "aria-label": "caption" });
      const seed = el("input", { class: "mdl-seed", type: "number", value: 0, min: 0, step: 1, "aria-label": "seed" });
      const temp = el("input", { class: "mdl-temperature", type: "range", min: 0, max: 1.5, step: 0.1, value: 1,
                                 "aria-label": "temperature" });
      const tempShown = el("span", {}, "τ = 1.0");
      const button = el("button", { class: "mdl-draw", type: "button" }, "draw");
      const message = el("div", { class: "mdl-message", role: "status" });
      const words = el("div", { class: "mdl-words" });
      const step = el("input", { class: "mdl-step", type: "range", min: 1, max: meta.T, value: meta.T, "aria-label": "step" });
      const stepShown = el("span", {}, `t = ${meta.T}`);
      const grid = el("div", { class: "mdl-grid" });
      const ctxs = [];
      for (let m = 0; m < meta.M; m++) {
        const c = el("canvas", { class: "mdl-canvas", width: meta.A, height: meta.B, title: `sample ${m + 1}` });
        c.style.width = meta.A * scale + "px"; c.style.height = meta.B * scale + "px";
        grid.append(c);
        ctxs.push(c.getContext("2d"));
      }
      let run = null, chosen = 0, timer = null;
      const show = (t) => {
        if (!run) return;
        ctxs.forEach((ctx, m) => paint(ctx, meta, run, m, t, scale));
        grid.querySelectorAll("canvas").forEach((c, m) => c.classList.toggle("mdl-chosen", m === chosen));
        const L = meta.L, a = (chosen * meta.T + t) * L;                   // alpha (M, T, L)
        words.replaceChildren(...run.words.map((w, j) => {
          const s = el("span", { class: "mdl-word" }, meta.words[w]);
          s.style.background = `rgba(255, 140, 0, ${Math.min(1, run.alpha[a + j] * 1.5).toFixed(3)})`;
          return s;
        }));
        step.value = t + 1; stepShown.textContent = `t = ${t + 1}`;
      };
      const compose = () => {
        const parts = meta.templates[template.value];
        const chosenSlots = [...slots.querySelectorAll("select")].map((s) => s.value);
        let k = 0;
        text.value = parts.map((p) => (typeof p === "string" ? p : chosenSlots[k++])).join(" ");
      };
      const buildSlots = () => {
        slots.replaceChildren(...meta.templates[template.value].filter((p) => typeof p !== "string").map((p, i) => {
          const s = el("select", { "aria-label": p.slot });
          p.options.forEach((o) => s.append(el("option", { value: o }, o)));
          s.selectedIndex = (3 * i + 1) % p.options.length;
          s.addEventListener("change", compose);
          return s;
        }));
        compose();
      };
      const drawNow = async () => {
        clearInterval(timer);
        message.textContent = "";
        root.dataset.state = "drawing";
        try {
          run = await api.draw(name, text.value, Number(seed.value) | 0, Number(temp.value));
        } catch (e) {
          message.textContent = e.message;
          root.dataset.state = "error";
          return;
        }
        status.textContent = `drawn in ${run.ms.toFixed(0)} ms, in this browser (8 samples, ${meta.T} steps each)`;
        let t = 0;
        show(0);
        root.dataset.state = "animating";                                 // the first canvases are on the page
        timer = setInterval(() => { t += 1; if (t >= meta.T) { clearInterval(timer); root.dataset.state = "drawn"; return; } show(t); }, 120);
        if (meta.T === 1) root.dataset.state = "drawn";
      };
      template.addEventListener("change", buildSlots);
      temp.addEventListener("input", () => { tempShown.textContent = `τ = ${Number(temp.value).toFixed(1)}`; });
      button.addEventListener("click", drawNow);
      text.addEventListener("keydown", (e) => { if (e.key === "Enter") drawNow(); });
      step.addEventListener("input", () => { clearInterval(timer); show(Number(step.value) - 1); });
      grid.addEventListener("click", (e) => {
        const i = [...grid.children].indexOf(e.target);
        if (i >= 0) { chosen = i; show(Number(step.value) - 1); }
      });
      root.replaceChildren(
        el("div", { class: "mdl-row" }, el("b", {}, meta.name), " ", el("small", {}, meta.description)),
        el("div", { class: "mdl-row" }, template, " ", slots),
        el("div", { class: "mdl-row" }, text, " ", button),
        el("div", { class: "mdl-row" }, "seed ", seed, "  temperature ", temp, " ", tempShown),
        message, grid,
        el("div", { class: "mdl-row" }, "step ", step, " ", stepShown, "  (click a sample to read its alignment)"),
        words, status);
      buildSlots();
      root.dataset.state = "ready";
      root.minidraw = { draw: drawNow, text, seed, temp };
      drawNow();
    }).catch((e) => {
      root.dataset.state = "unavailable";
      root.replaceChildren(el("div", { class: "mdl-fallback" },
        `The live editor cannot run here (${e.message}); the figures below were drawn by the same model.`));
    });
  }

  // ---- the filterbank explorer: minidraw.attention's closed forms ---------------------------------------------
  function filterbank(g, delta, sigma2, N, size) {
    const F = [];
    for (let i = 1; i <= N; i++) {
      const mu = g + (i - N / 2 - 0.5) * delta;                          // μ^i = g + (i − N/2 − 0.5) δ
      const row = [];
      let Z = 0;
      for (let a = 1; a <= size; a++) {
        const v = Math.exp(-((a - mu) ** 2) / (2 * sigma2));              // exp(−(a − μ^i)² / 2σ²)
        row.push(v); Z += v;
      }
      Z = Math.max(Z, 1e-8);                                              // Z_i = max(Σ_a ..., ε)
      F.push(row.map((v) => v / Z));
    }
    return F;                                                             // (N, size)
  }

  api.glimpse = function (x, p, N) {                                      // γ · F_Y x F_Xᵀ, (N, N)
    const B = x.length, A = x[0].length;
    const FX = filterbank(p.gx, p.delta, p.sigma2, N, A), FY = filterbank(p.gy, p.delta, p.sigma2, N, B);
    const out = [];
    for (let i = 0; i < N; i++) {
      const row = [];
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let b = 0; b < B; b++) {
          if (FY[i][b] === 0) continue;
          let r = 0;
          for (let a = 0; a < A; a++) r += x[b][a] * FX[j][a];
          s += FY[i][b] * r;
        }
        row.push(p.gamma * s);
      }
      out.push(row);
    }
    return { glimpse: out, FX, FY };
  };

  function explorer(root) {
    const N = Number(root.dataset.n || 8);
    root.dataset.state = "loading";
    fetch(BASE + "digit.json").then((r) => r.json()).then((digit) => {
      const x = digit.pixels, B = x.length, A = x[0].length, S = 6;
      const sliders = {
        gx: ["g_X", -5, A + 5, 0.5, 14.5], gy: ["g_Y", -5, B + 5, 0.5, 14.5], sigma2: ["σ²", 0.05, 10, 0.05, 1],
        delta: ["δ", 0, 6, 0.1, 3], gamma: ["γ", 0.1, 3, 0.1, 1],
      };
      const inputs = {}, shown = {};
      const rows = Object.entries(sliders).map(([k, [label, min, max, stepSize, value]]) => {
        inputs[k] = el("input", { type: "range", min, max, step: stepSize, value, "aria-label": label, class: "mdl-" + k });
        shown[k] = el("span", {});
        return el("div", { class: "mdl-row" }, el("span", { class: "mdl-label" }, label), inputs[k], shown[k]);
      });
      const image = el("canvas", { width: A * S, height: B * S, class: "mdl-digit" });
      const glimpse = el("canvas", { width: A * S, height: B * S, class: "mdl-glimpse" });
      const bank = el("canvas", { width: A * S, height: 120, class: "mdl-bank" });
      const caption = el("div", { class: "mdl-status" });
      const update = () => {
        const p = Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, Number(i.value)]));
        Object.entries(shown).forEach(([k, s]) => { s.textContent = " " + p[k]; });
        const { glimpse: g, FX } = api.glimpse(x, p, N);
        api.lastGlimpse = { params: p, N, glimpse: g, label: digit.label };
        let ctx = image.getContext("2d");                                 // the digit and the filter centres
        for (let b = 0; b < B; b++) for (let a = 0; a < A; a++) {
          const v = Math.round(255 * x[b][a]); ctx.fillStyle = `rgb(${v},${v},${v})`; ctx.fillRect(a * S, b * S, S, S);
        }
        ctx.fillStyle = "red";
        for (let i = 1; i <= N; i++) for (let j = 1; j <= N; j++) {
          const cx = p.gx + (j - N / 2 - 0.5) * p.delta, cy = p.gy + (i - N / 2 - 0.5) * p.delta;
          ctx.beginPath(); ctx.arc((cx - 0.5) * S, (cy - 0.5) * S, 2, 0, 2 * Math.PI); ctx.fill();
        }
        ctx = glimpse.getContext("2d");                                   // the N×N glimpse
        const top = Math.max(1e-8, ...g.flat());
        const cell = (A * S) / N;
        for (let i = 0; i < N; i++) for (let j = 0; j < N; j++) {
          const v = Math.round(255 * Math.min(1, g[i][j] / top)); ctx.fillStyle = `rgb(${v},${v},${v})`;
          ctx.fillRect(j * cell, i * cell, cell + 1, cell + 1);
        }
        ctx = bank.getContext("2d");                                      // the rows of F_X
        ctx.clearRect(0, 0, bank.width, bank.height);
        const peak = Math.max(...FX.flat(), 1e-8);
        FX.forEach((row, i) => {
          ctx.strokeStyle = `hsl(${(360 * i) / N}, 70%, 45%)`; ctx.beginPath();
          row.forEach((v, a) => { const X = (a + 0.5) * S, Y = 115 - (110 * v) / peak; a ? ctx.lineTo(X, Y) : ctx.moveTo(X, Y); });
          ctx.stroke();
        });
        caption.textContent = `left: digit ${digit.label} and the ${N}×${N} filter centres; middle: the glimpse ` +
          `γ F_Y x F_Xᵀ (brightest = ${top.toFixed(3)}); right: the ${N} rows of F_X over the ${A} columns`;
      };
      Object.values(inputs).forEach((i) => i.addEventListener("input", update));
      root.replaceChildren(...rows, el("div", { class: "mdl-panels" }, image, glimpse, bank), caption);
      update();
      root.dataset.state = "ready";
    }).catch((e) => {
      root.dataset.state = "unavailable";
      root.replaceChildren(el("div", { class: "mdl-fallback" }, `The explorer cannot run here (${e.message}).`));
    });
  }

  function start() {
    document.querySelectorAll(".minidraw-live[data-model]").forEach(editor);
    document.querySelectorAll(".minidraw-filterbank").forEach(explorer);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();

'use strict';
// A canvas line chart for range query answers: one path per series, gaps where a step has
// no sample, optional stacking, a legend that isolates a series on click and a hover
// tooltip naming the nearest series. Sized for 1k series x 1k points.

const Chart = (() => {
  const {el, formatTime, seriesName} = App;
  const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f',
    '#bcbd22', '#17becf', '#3b5ba5', '#e56a29', '#4f9a3f', '#b8323b', '#6f58a6', '#a46e57', '#c65aa3', '#59606a'];
  const MARGIN = {left: 64, right: 16, top: 10, bottom: 26};
  const HEIGHT = 360;

  function parseValue(v) {
    if (v === '+Inf') return Infinity;
    if (v === '-Inf') return -Infinity;
    return parseFloat(v);
  }

  // A step that gives about `target` ticks over `span`, from 1, 2, 5 x 10^n.
  function niceStep(span, target) {
    const raw = span / Math.max(target, 1);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (raw <= m * mag) return m * mag;
    return 10 * mag;
  }

  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    172800, 604800, 2592000, 7776000, 31536000].map((s) => s * 1000);

  function timeStep(span, target) {
    return TIME_STEPS.find((s) => span / s <= target) || TIME_STEPS[TIME_STEPS.length - 1];
  }

  function formatValue(v) {
    if (!isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e15 || a < 1e-4)) return v.toExponential(3);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'G';
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
    if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
    return String(+v.toPrecision(4));
  }

  function tickLabel(ms, step) {
    const s = formatTime(ms);
    if (step >= 86400000) return s.slice(5, 10);
    if (step >= 60000) return s.slice(11, 16);
    return s.slice(11, 19);
  }

  // series: the API's matrix; opts: {start, end, step} in ms and {stacked}.
  function render(host, series, opts) {
    host.replaceChildren();
    const n = series.length;
    const stepMs = opts.step;
    const slots = Math.floor((opts.end - opts.start) / stepMs) + 1;
    // Every series on the step grid: NaN where it has no sample. Native histogram points
    // are drawn as their observation count.
    const ys = series.map((s) => {
      const a = new Float64Array(slots).fill(NaN);
      const points = (s.values || []).concat((s.histograms || []).map(([t, h]) => [t, h.count]));
      for (const [t, v] of points) {
        const k = Math.round((t * 1000 - opts.start) / stepMs);
        if (k >= 0 && k < slots) a[k] = parseValue(v);
      }
      return a;
    });
    const hidden = new Uint8Array(n);
    let only = -1;

    const wrap = el('div', {class: 'chart', 'data-series': n});
    const canvas = el('canvas', {});
    const overlay = el('canvas', {class: 'overlay'});
    const tip = el('div', {class: 'tooltip', style: 'display:none'});
    const legend = el('div', {class: 'legend'});
    wrap.append(canvas, overlay, tip);
    host.append(wrap, legend);

    let drawn = null; // {ys (stacked or raw), x(), y(), width}

    function visible(i) {
      return only < 0 ? !hidden[i] : only === i;
    }

    function draw() {
      const width = Math.max(wrap.clientWidth, 300);
      const dpr = window.devicePixelRatio || 1;
      for (const c of [canvas, overlay]) {
        c.width = width * dpr;
        c.height = HEIGHT * dpr;
        c.style.width = width + 'px';
        c.style.height = HEIGHT + 'px';
      }
      const ctx = canvas.getContext('2d');
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, width, HEIGHT);
      // Values as drawn: stacked sums of the visible series, or the series themselves.
      let shown = ys;
      if (opts.stacked) {
        const acc = new Float64Array(slots);
        shown = ys.map((a, i) => {
          if (!visible(i)) return a;
          const out = new Float64Array(slots);
          for (let k = 0; k < slots; k++) {
            if (isNaN(a[k])) { out[k] = NaN; continue; }
            acc[k] += a[k];
            out[k] = acc[k];
          }
          return out;
        });
      }
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = 0; i < n; i++) {
        if (!visible(i)) continue;
        const a = shown[i];
        for (let k = 0; k < slots; k++) {
          const v = a[k];
          if (isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
        }
      }
      if (opts.stacked && lo > 0) lo = 0;
      if (lo === Infinity) { lo = 0; hi = 1; }
      if (lo === hi) { lo -= 1; hi += 1; }
      const yStep = niceStep(hi - lo, 6);
      lo = Math.floor(lo / yStep) * yStep;
      hi = Math.ceil(hi / yStep) * yStep;
      const plotW = width - MARGIN.left - MARGIN.right;
      const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
      const span = Math.max(opts.end - opts.start, 1);
      const x = (ms) => MARGIN.left + ((ms - opts.start) / span) * plotW;
      const y = (v) => MARGIN.top + (1 - (v - lo) / (hi - lo)) * plotH;

      ctx.font = '11px system-ui, sans-serif';
      ctx.fillStyle = '#66707a';
      ctx.strokeStyle = '#e6e9ed';
      ctx.lineWidth = 1;
      ctx.textAlign = 'right';
      ctx.textBaseline = 'middle';
      for (let v = lo; v <= hi + yStep / 2; v += yStep) {
        const py = Math.round(y(v)) + 0.5;
        ctx.beginPath(); ctx.moveTo(MARGIN.left, py); ctx.lineTo(width - MARGIN.right, py); ctx.stroke();
        ctx.fillText(formatValue(+v.toPrecision(12)), MARGIN.left - 6, py);
      }
      const tStep = timeStep(span, Math.max(plotW / 110, 2));
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      for (let t = Math.ceil(opts.start / tStep) * tStep; t <= opts.end; t += tStep) {
        const px = Math.round(x(t)) + 0.5;
        ctx.beginPath(); ctx.moveTo(px, MARGIN.top); ctx.lineTo(px, HEIGHT - MARGIN.bottom); ctx.stroke();
        ctx.fillText(tickLabel(t, tStep), px, HEIGHT - MARGIN.bottom + 6);
      }
      ctx.lineWidth = n > 200 ? 1 : 1.5;
      ctx.lineJoin = 'round';
      ctx.lineCap = 'round';
      for (let i = 0; i < n; i++) {
        if (!visible(i)) continue;
        const a = shown[i];
        ctx.strokeStyle = PALETTE[i % PALETTE.length];
        ctx.beginPath();
        let pen = false;
        let single = -1;
        for (let k = 0; k < slots; k++) {
          const v = a[k];
          if (!isFinite(v)) { pen = false; continue; }
          const px = x(opts.start + k * stepMs);
          const py = y(v);
          if (pen) ctx.lineTo(px, py);
          else {
            ctx.moveTo(px, py);
            const next = k + 1 < slots ? a[k + 1] : NaN;
            if (!isFinite(next)) single = k;
          }
          pen = true;
          if (single === k) { ctx.lineTo(px + 0.01, py); }
        }
        ctx.stroke();
      }
      drawn = {shown, x, y, plotW, width};
    }

    function hover(ev) {
      if (!drawn) return;
      const rect = canvas.getBoundingClientRect();
      const mx = ev.clientX - rect.left;
      const my = ev.clientY - rect.top;
      const k = Math.round(((mx - MARGIN.left) / drawn.plotW) * (opts.end - opts.start) / stepMs);
      const octx = overlay.getContext('2d');
      const dpr = window.devicePixelRatio || 1;
      octx.setTransform(dpr, 0, 0, dpr, 0, 0);
      octx.clearRect(0, 0, drawn.width, HEIGHT);
      if (k < 0 || k >= slots) { tip.style.display = 'none'; return; }
      let best = -1;
      let bestD = Infinity;
      for (let i = 0; i < n; i++) {
        if (!visible(i)) continue;
        const v = drawn.shown[i][k];
        if (!isFinite(v)) continue;
        const d = Math.abs(drawn.y(v) - my);
        if (d < bestD) { bestD = d; best = i; }
      }
      const t = opts.start + k * stepMs;
      const px = drawn.x(t);
      octx.strokeStyle = 'rgba(0,0,0,.35)';
      octx.beginPath(); octx.moveTo(px, MARGIN.top); octx.lineTo(px, HEIGHT - MARGIN.bottom); octx.stroke();
      if (best < 0) { tip.style.display = 'none'; return; }
      const py = drawn.y(drawn.shown[best][k]);
      octx.fillStyle = PALETTE[best % PALETTE.length];
      octx.beginPath(); octx.arc(px, py, 4, 0, 2 * Math.PI); octx.fill();
      tip.replaceChildren(
        el('div', {}, formatTime(t)),
        el('div', {}, el('span', {class: 'swatch', style: `background:${PALETTE[best % PALETTE.length]}`}), ' ',
          seriesName(series[best].metric)),
        el('div', {}, el('b', {}, 'value: '), String(ys[best][k])),
      );
      tip.style.display = 'block';
      const left = px + 14 + tip.offsetWidth > drawn.width ? px - 14 - tip.offsetWidth : px + 14;
      tip.style.left = left + 'px';
      tip.style.top = Math.max(py - 20, 0) + 'px';
    }

    canvas.addEventListener('mousemove', hover);
    canvas.addEventListener('mouseleave', () => {
      tip.style.display = 'none';
      overlay.getContext('2d').clearRect(0, 0, overlay.width, overlay.height);
    });

    const items = series.map((s, i) => el('div', {
      'data-index': i,
      title: seriesName(s.metric),
      onclick: (ev) => {
        if (ev.ctrlKey || ev.metaKey) { hidden[i] ^= 1; only = -1; } else { only = only === i ? -1 : i; }
        items.forEach((it, j) => it.classList.toggle('dim', !visible(j)));
        draw();
      },
    }, el('span', {class: 'swatch', style: `background:${PALETTE[i % PALETTE.length]}`}), seriesName(s.metric)));
    legend.append(...items);

    draw();
    const onResize = () => { if (wrap.isConnected) draw(); else window.removeEventListener('resize', onResize); };
    window.addEventListener('resize', onResize);
  }

  return {render, formatValue};
})();

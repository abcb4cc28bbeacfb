'use strict';
// The graph page: expression panels with autocompletion, Table and Graph tabs, Thanos's
// query options, the panels' state in the URL as Prometheus writes it (g0.expr=...).

(() => {
  const {el, api, formatTime, parseTime, parseDuration, formatDuration, seriesName} = App;
  const MAX_TABLE_ROWS = 10000;
  const FUNCTIONS = ['abs', 'absent', 'absent_over_time', 'avg_over_time', 'ceil', 'changes', 'clamp', 'clamp_max',
    'clamp_min', 'count_over_time', 'day_of_month', 'day_of_week', 'day_of_year', 'days_in_month', 'delta', 'deriv',
    'exp', 'floor', 'histogram_quantile', 'holt_winters', 'hour', 'idelta', 'increase', 'irate', 'label_join',
    'label_replace', 'last_over_time', 'ln', 'log10', 'log2', 'max_over_time', 'min_over_time', 'minute', 'month',
    'predict_linear', 'present_over_time', 'quantile_over_time', 'rate', 'resets', 'round', 'scalar', 'sgn', 'sort',
    'sort_desc', 'sqrt', 'stddev_over_time', 'stdvar_over_time', 'sum_over_time', 'time', 'timestamp', 'vector',
    'year', 'acos', 'acosh', 'asin', 'asinh', 'atan', 'atanh', 'cos', 'cosh', 'sin', 'sinh', 'tan', 'tanh', 'deg',
    'rad', 'pi', 'double_exponential_smoothing', 'histogram_count', 'histogram_sum', 'histogram_avg',
    'histogram_fraction', 'histogram_stddev', 'histogram_stdvar', 'histogram_quantiles', 'sort_by_label',
    'sort_by_label_desc', 'first_over_time', 'mad_over_time', 'ts_of_first_over_time', 'ts_of_last_over_time',
    'ts_of_min_over_time', 'ts_of_max_over_time', 'min_of', 'max_of', 'info'];
  const AGGREGATIONS = ['sum', 'avg', 'count', 'min', 'max', 'group', 'stddev', 'stdvar', 'topk', 'bottomk',
    'quantile', 'count_values'];
  const KEYWORDS = ['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless'];

  // Names the API knows, fetched once per page and shared by the panels.
  const names = {metrics: null, labels: null, values: {}};
  function cached(key, load) {
    return async () => {
      if (!names[key]) names[key] = load().catch(() => { names[key] = null; return []; });
      return names[key];
    };
  }
  const metricNames = cached('metrics', async () => (await api('label/__name__/values')).data);
  const labelNames = cached('labels', async () => (await api('labels')).data);
  async function labelValues(label) {
    if (!names.values[label]) {
      names.values[label] = api(`label/${encodeURIComponent(label)}/values`).then((r) => r.data)
        .catch(() => { delete names.values[label]; return []; });
    }
    return names.values[label];
  }

  // What the text before the cursor is completing: {kind, word, label?}.
  function completionContext(before) {
    const value = before.match(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)$/);
    const open = (before.match(/{/g) || []).length > (before.match(/}/g) || []).length;
    if (value && open) return {kind: 'value', word: value[3], label: value[1]};
    const word = (before.match(/[a-zA-Z_:][a-zA-Z0-9_:]*$/) || [''])[0];
    if (open) return {kind: 'label', word};
    if (/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$/.test(before)) return {kind: 'label', word};
    return {kind: 'metric', word};
  }

  async function candidates(ctx) {
    const w = ctx.word;
    const match = (list, note) => list.filter((s) => s.startsWith(w) && s !== w).map((s) => [s, note]);
    if (ctx.kind === 'value') {
      return (await labelValues(ctx.label)).filter((v) => v.startsWith(w) && v !== w).map((v) => [v, 'value']);
    }
    if (!w) return [];
    if (ctx.kind === 'label') return match(await labelNames(), 'label');
    return [...match(await metricNames(), 'metric'), ...match(FUNCTIONS, 'function'),
      ...match(AGGREGATIONS, 'aggregation'), ...match(KEYWORDS, 'keyword')];
  }

  // The position of the first unbalanced bracket or quote: a syntax error's likely place.
  function unbalanced(expr) {
    const stack = [];
    const pairs = {')': '(', ']': '[', '}': '{'};
    for (let i = 0; i < expr.length; i++) {
      const c = expr[i];
      if (c === '"' || c === "'" || c === '`') {
        const start = i;
        for (i++; i < expr.length && expr[i] !== c; i++) if (expr[i] === '\\' && c !== '`') i++;
        if (i >= expr.length) return start;
      } else if (c === '#') {
        while (i < expr.length && expr[i] !== '\n') i++;
      } else if ('([{'.includes(c)) {
        stack.push(i);
      } else if (pairs[c]) {
        if (!stack.length || expr[stack[stack.length - 1]] !== pairs[c]) return i;
        stack.pop();
      }
    }
    return stack.length ? stack[stack.length - 1] : -1;
  }

  // The error, with the expression and a caret under the place the error names.
  function syntaxError(message, expr) {
    const box = el('div', {class: 'error'}, el('strong', {}, 'Error: '), message);
    let pos = -1;
    const at = message.match(/(\d+):(\d+): parse error/);
    if (at) {
      const lines = expr.split('\n');
      const line = Math.min(+at[1], lines.length) - 1;
      pos = lines.slice(0, line).reduce((s, l) => s + l.length + 1, 0) + (+at[2] - 1);
      if (at[1] === '1' && at[2] === '1' && message.includes('no expression')) pos = -1;
    }
    if (pos < 0 && /parse error/.test(message)) pos = unbalanced(expr);
    if (pos >= 0) {
      const lineStart = expr.lastIndexOf('\n', pos - 1) + 1;
      let lineEnd = expr.indexOf('\n', pos);
      if (lineEnd < 0) lineEnd = expr.length;
      box.append(el('pre', {class: 'error-position'},
        expr.slice(lineStart, lineEnd) + '\n' + ' '.repeat(pos - lineStart) + '^'));
    }
    return box;
  }

  // Partial response is on unless the user turned it off, remembered as Thanos's UI does.
  function partialDefault() {
    try { return JSON.parse(localStorage.getItem('usePartialResponse') ?? 'true') !== false; } catch (e) { return true; }
  }

  function defaults() {
    return {expr: '', tab: 'table', range: 3600000, end: null, moment: null, step: null, stacked: false,
      dedup: true, partial: partialDefault(), resolution: 'auto'};
  }

  const RANGES = ['1m', '5m', '15m', '30m', '1h', '2h', '6h', '12h', '1d', '2d', '1w', '2w', '4w', '8w', '26w', '1y']
    .map((r) => parseDuration(r));

  function readURL() {
    const params = new URLSearchParams(location.search);
    const panels = [];
    for (let i = 0; params.has(`g${i}.expr`) || params.has(`g${i}.tab`); i++) {
      const g = (k) => params.get(`g${i}.${k}`);
      const p = defaults();
      p.expr = g('expr') || '';
      p.tab = g('tab') === '0' ? 'graph' : 'table';
      p.stacked = g('stacked') === '1';
      const range = parseDuration(g('range_input') || '');
      if (!isNaN(range) && range > 0) p.range = range;
      const end = parseTime(g('end_input') || '');
      if (!isNaN(end)) p.end = end;
      const moment = parseTime(g('moment_input') || '');
      if (!isNaN(moment)) p.moment = moment;
      const step = parseFloat(g('step_input') || '');
      if (step > 0) p.step = step;
      if (g('deduplicate') !== null) p.dedup = g('deduplicate') === '1';
      if (g('partial_response') !== null) p.partial = g('partial_response') === '1';
      if (g('max_source_resolution')) p.resolution = g('max_source_resolution');
      panels.push(p);
    }
    return panels;
  }

  function writeURL(panels) {
    const params = new URLSearchParams();
    panels.forEach((panel, i) => {
      const p = panel.state;
      const set = (k, v) => params.set(`g${i}.${k}`, v);
      set('expr', p.expr);
      set('tab', p.tab === 'graph' ? '0' : '1');
      set('stacked', p.stacked ? '1' : '0');
      set('range_input', formatDuration(p.range));
      if (p.end !== null) set('end_input', formatTime(p.end));
      if (p.moment !== null) set('moment_input', formatTime(p.moment));
      if (p.step !== null) set('step_input', String(p.step));
      set('max_source_resolution', p.resolution);
      set('deduplicate', p.dedup ? '1' : '0');
      set('partial_response', p.partial ? '1' : '0');
    });
    history.replaceState(null, '', `${location.pathname}?${params}`);
  }

  const VIRTUAL_ABOVE = 500;
  const ROW_HEIGHT = 29;

  // A table of one-line rows that lays out only the rows in view: ten thousand rows cost
  // what a hundred do.
  function virtualTable(rows) {
    const box = el('div', {class: 'virtual-table', 'data-rows': rows.length});
    const t = el('table', {class: 'result-table one-line'});
    box.append(t);
    let shown = '';
    const draw = () => {
      const first = Math.max(Math.floor(box.scrollTop / ROW_HEIGHT) - 20, 0);
      const last = Math.min(first + Math.ceil((box.clientHeight || 600) / ROW_HEIGHT) + 40, rows.length);
      const key = `${first}:${last}`;
      if (key === shown) return;
      shown = key;
      t.innerHTML = '<thead><tr><th>Series</th><th>Value</th></tr></thead><tbody>' +
        `<tr style="height:${first * ROW_HEIGHT}px"></tr>` + rows.slice(first, last).join('') +
        `<tr style="height:${(rows.length - last) * ROW_HEIGHT}px"></tr></tbody>`;
    };
    box.addEventListener('scroll', () => requestAnimationFrame(draw));
    requestAnimationFrame(draw);
    draw();
    return box;
  }

  // The answer as a table, built as one HTML string.
  function table(data) {
    const esc = App.escapeHtml;
    const row = (series, value, style) =>
      `<tr><td>${series}</td><td class="num"${style || ''}>${esc(value)}</td></tr>`;
    const parts = [];
    let total = 1;
    if (data.resultType === 'scalar' || data.resultType === 'string') {
      parts.push(row(`<i>${data.resultType}</i>`, data.result[1]));
    } else {
      total = data.result.length;
      for (const s of data.result.slice(0, MAX_TABLE_ROWS)) {
        if (data.resultType === 'vector') {
          parts.push(row(esc(seriesName(s.metric)), s.value ? s.value[1] : JSON.stringify(s.histogram[1])));
        } else {
          const lines = (s.values || []).map(([t, v]) => `${v} @${t}`)
            .concat((s.histograms || []).map(([t, h]) => `${JSON.stringify(h)} @${t}`)).join('\n');
          parts.push(row(esc(seriesName(s.metric)), lines, ' style="white-space:pre"'));
        }
      }
    }
    if (!parts.length) parts.push('<tr><td colspan="2" class="muted">Empty query result</td></tr>');
    if (data.resultType === 'vector' && parts.length > VIRTUAL_ABOVE) {
      return [virtualTable(parts), ...(total > MAX_TABLE_ROWS ? [el('div', {class: 'warning'}, `Showing the first ${MAX_TABLE_ROWS} of ${total} series.`)] : [])];
    }
    const t = el('table', {class: 'result-table'});
    t.innerHTML = `<thead><tr><th>Series</th><th>Value</th></tr></thead><tbody>${parts.join('')}</tbody>`;
    const out = [t];
    if (total > MAX_TABLE_ROWS) out.unshift(el('div', {class: 'warning'}, `Showing the first ${MAX_TABLE_ROWS} of ${total} series.`));
    return out;
  }

  class Panel {
    constructor(page, state) {
      this.page = page;
      this.state = state;
      this.abort = null;
      this.build();
    }

    build() {
      const s = this.state;
      this.expr = el('textarea', {class: 'expr', rows: 1, spellcheck: 'false', autocomplete: 'off',
        placeholder: 'Expression (press Shift+Enter for newlines)'});
      this.expr.value = s.expr;
      this.menu = el('ul', {class: 'complete', style: 'display:none'});
      this.exec = el('button', {class: 'primary execute', onclick: () => this.run()}, 'Execute');
      const remove = el('button', {class: 'remove', title: 'Remove panel', onclick: () => this.page.remove(this)}, '\u00d7');
      this.dedup = el('input', {type: 'checkbox', class: 'dedup', checked: s.dedup});
      this.partial = el('input', {type: 'checkbox', class: 'partial', checked: s.partial});
      this.resolution = el('select', {class: 'resolution'},
        [['auto', 'Auto downsampling'], ['0s', 'Only raw data'], ['5m', 'Max 5m downsampling'], ['1h', 'Max 1h downsampling']]
          .map(([v, t]) => el('option', {value: v, selected: s.resolution === v}, t)));
      for (const c of [this.dedup, this.partial, this.resolution]) c.addEventListener('change', () => this.run());
      this.partial.addEventListener('change', () => localStorage.setItem('usePartialResponse', JSON.stringify(this.partial.checked)));
      this.tabTable = el('button', {class: 'tab-table', onclick: () => this.setTab('table')}, 'Table');
      this.tabGraph = el('button', {class: 'tab-graph', onclick: () => this.setTab('graph')}, 'Graph');
      this.moment = el('input', {class: 'time moment', placeholder: 'Evaluation time (now)', value: s.moment === null ? '' : formatTime(s.moment)});
      this.range = el('input', {class: 'range', value: formatDuration(s.range), title: 'Range'});
      this.end = el('input', {class: 'time end', placeholder: 'End time (now)', value: s.end === null ? '' : formatTime(s.end)});
      this.step = el('input', {class: 'step', placeholder: 'Res. (s)', value: s.step === null ? '' : s.step});
      this.stacked = el('input', {type: 'checkbox', class: 'stacked', checked: s.stacked});
      this.stacked.addEventListener('change', () => this.run());
      for (const c of [this.moment, this.range, this.end, this.step]) {
        c.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') this.run(); });
      }
      this.tableControls = el('div', {class: 'controls'}, el('label', {}, 'Evaluation time ', this.moment));
      // Range one notch shorter or longer; end time back or forward by half the range.
      const zoom = (dir) => {
        const cur = parseDuration(this.range.value) || this.state.range;
        const next = dir < 0 ? [...RANGES].reverse().find((r) => r < cur) : RANGES.find((r) => r > cur);
        if (next) { this.range.value = formatDuration(next); this.run(); }
      };
      const shift = (dir) => {
        const end = this.end.value.trim() ? parseTime(this.end.value) : Date.now();
        const range = parseDuration(this.range.value) || this.state.range;
        if (isNaN(end)) return;
        this.end.value = formatTime(end + dir * range / 2);
        this.run();
      };
      this.graphControls = el('div', {class: 'controls'},
        el('span', {}, el('button', {class: 'range-less', title: 'Shorter range', onclick: () => zoom(-1)}, '\u2212'),
          ' ', this.range, ' ', el('button', {class: 'range-more', title: 'Longer range', onclick: () => zoom(1)}, '+')),
        el('span', {}, el('button', {class: 'end-back', title: 'Back by half the range', onclick: () => shift(-1)}, '\u00ab'),
          ' ', this.end, ' ', el('button', {class: 'end-forward', title: 'Forward by half the range', onclick: () => shift(1)}, '\u00bb')),
        el('label', {}, 'Resolution ', this.step), el('label', {}, this.stacked, ' Stacked'));
      this.messages = el('div', {class: 'messages'});
      this.stats = el('div', {class: 'stats'});
      this.result = el('div', {class: 'result'});
      this.root = el('div', {class: 'panel'},
        el('div', {class: 'expr-row'}, this.expr, this.exec, remove, this.menu),
        el('div', {class: 'options'},
          el('label', {}, this.dedup, ' Use Deduplication'),
          el('label', {}, this.partial, ' Use Partial Response'),
          el('label', {}, 'Max Source Resolution ', this.resolution)),
        el('div', {class: 'tabs'}, this.tabTable, this.tabGraph),
        this.tableControls, this.graphControls, this.messages, this.stats, this.result);
      this.completion();
      this.setTab(s.tab, true);
    }

    completion() {
      let items = [];
      let sel = 0;
      let ctx = null;
      const close = () => { this.menu.style.display = 'none'; this.menu.replaceChildren(); items = []; };
      const show = () => {
        this.menu.replaceChildren(...items.map(([text, note], i) => el('li', {
          class: i === sel ? 'sel' : null,
          onmousedown: (ev) => { ev.preventDefault(); sel = i; accept(); },
        }, text, el('small', {}, note))));
        this.menu.style.display = items.length ? 'block' : 'none';
        const cur = this.menu.children[sel];
        if (cur) cur.scrollIntoView({block: 'nearest'});
      };
      const accept = () => {
        const [text] = items[sel];
        const pos = this.expr.selectionStart;
        const v = this.expr.value;
        const start = pos - ctx.word.length;
        let insert = text;
        if (ctx.kind === 'value' && v[pos] !== '"') insert += '"';
        this.expr.value = v.slice(0, start) + insert + v.slice(pos);
        const caret = start + insert.length;
        this.expr.setSelectionRange(caret, caret);
        close();
      };
      let seq = 0;
      this.expr.addEventListener('input', async () => {
        this.autosize();
        const mine = ++seq;
        const c = completionContext(this.expr.value.slice(0, this.expr.selectionStart));
        const found = (await candidates(c)).slice(0, 50);
        if (mine !== seq) return;
        ctx = c;
        items = found;
        sel = 0;
        show();
      });
      this.expr.addEventListener('keydown', (ev) => {
        if (items.length) {
          if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
            sel = (sel + (ev.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
            show();
            ev.preventDefault();
            return;
          }
          if (ev.key === 'Tab' || (ev.key === 'Enter' && !ev.shiftKey)) { accept(); ev.preventDefault(); return; }
          if (ev.key === 'Escape') { close(); return; }
        }
        if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); this.run(); }
      });
      let closing = null;
      this.expr.addEventListener('blur', () => { closing = setTimeout(close, 150); });
      this.expr.addEventListener('focus', () => clearTimeout(closing));
    }

    autosize() {
      this.expr.style.height = 'auto';
      this.expr.style.height = this.expr.scrollHeight + 2 + 'px';
    }

    setTab(tab, quiet) {
      this.state.tab = tab;
      this.tabTable.classList.toggle('active', tab === 'table');
      this.tabGraph.classList.toggle('active', tab === 'graph');
      this.tableControls.style.display = tab === 'table' ? '' : 'none';
      this.graphControls.style.display = tab === 'graph' ? '' : 'none';
      if (!quiet) this.run();
    }

    // Reads the inputs into the state; false (with a message) if one is bad.
    readInputs() {
      const s = this.state;
      const bad = (what) => { this.show([el('div', {class: 'error'}, what)]); return false; };
      s.expr = this.expr.value;
      s.dedup = this.dedup.checked;
      s.partial = this.partial.checked;
      s.resolution = this.resolution.value;
      s.stacked = this.stacked.checked;
      const range = parseDuration(this.range.value);
      if (isNaN(range) || range <= 0) return bad(`Invalid range "${this.range.value}": want a duration such as 1h or 30m.`);
      s.range = range;
      s.end = this.end.value.trim() ? parseTime(this.end.value) : null;
      if (Number.isNaN(s.end)) return bad(`Invalid end time "${this.end.value}": want YYYY-MM-DD HH:MM:SS (UTC).`);
      s.moment = this.moment.value.trim() ? parseTime(this.moment.value) : null;
      if (Number.isNaN(s.moment)) return bad(`Invalid evaluation time "${this.moment.value}": want YYYY-MM-DD HH:MM:SS (UTC).`);
      const step = this.step.value.trim() ? parseFloat(this.step.value) : null;
      if (step !== null && !(step > 0)) return bad(`Invalid resolution "${this.step.value}": want seconds above 0.`);
      s.step = step;
      // Times as the UI writes them (UTC), whatever form they were typed in.
      if (s.end !== null) this.end.value = formatTime(s.end);
      if (s.moment !== null) this.moment.value = formatTime(s.moment);
      this.range.value = formatDuration(s.range);
      return true;
    }

    show(messages, stats, result) {
      this.messages.replaceChildren(...(messages || []));
      this.stats.textContent = stats || '';
      this.result.replaceChildren(...(result || []));
    }

    async run() {
      if (!this.readInputs()) return;
      this.page.save();
      const s = this.state;
      if (!s.expr.trim()) { this.show(); return; }
      if (this.abort) this.abort.abort();
      const abort = new AbortController();
      this.abort = abort;
      const params = {query: s.expr, dedup: String(s.dedup), partial_response: String(s.partial)};
      if (s.resolution !== 'auto') params.max_source_resolution = s.resolution;
      else params.max_source_resolution = 'auto';
      let path = 'query';
      let grid = null;
      if (s.tab === 'graph') {
        const end = s.end === null ? Date.now() : s.end;
        const stepS = s.step || Math.max(Math.floor(s.range / 1000 / 250), 1);
        grid = {start: end - s.range, end, step: stepS * 1000, stacked: s.stacked};
        Object.assign(params, {start: grid.start / 1000, end: end / 1000, step: stepS});
        path = 'query_range';
      } else if (s.moment !== null) {
        params.time = s.moment / 1000;
      }
      this.exec.disabled = true;
      this.root.classList.add('loading');
      const started = performance.now();
      try {
        const r = await api(path, params, {post: true, signal: abort.signal});
        const took = Math.round(performance.now() - started);
        const notes = [...(r.warnings || []).map((w) => el('div', {class: 'warning'}, w)),
          ...(r.infos || []).map((w) => el('div', {class: 'info'}, w))];
        const count = Array.isArray(r.data.result) && r.data.resultType !== 'scalar' && r.data.resultType !== 'string'
          ? r.data.result.length : 1;
        const stats = `Load time: ${took}ms \u00b7 Result series: ${count}` + (grid ? ` \u00b7 Resolution: ${grid.step / 1000}s` : '');
        if (grid) {
          const holder = el('div', {class: 'graph'});
          this.show(notes, stats, [holder]);
          if (r.data.resultType !== 'matrix') {
            holder.append(el('div', {class: 'muted'}, `The ${r.data.resultType} result cannot be graphed.`));
          } else {
            Chart.render(holder, r.data.result, grid);
          }
        } else {
          this.show(notes, stats, table(r.data));
        }
      } catch (e) {
        if (e.name === 'AbortError') return;
        this.show([syntaxError(e.message, s.expr)]);
      } finally {
        if (this.abort === abort) {
          this.exec.disabled = false;
          this.root.classList.remove('loading');
          this.root.dataset.done = String(Date.now());
        }
      }
    }
  }

  // For tests and benchmarks of large answers.
  App.views = {table};

  App.pages.graph = (main) => {
    const page = {panels: []};
    const list = el('div', {class: 'panels'});
    page.save = () => writeURL(page.panels);
    page.add = (state) => {
      const p = new Panel(page, state);
      page.panels.push(p);
      list.append(p.root);
      return p;
    };
    page.remove = (p) => {
      page.panels = page.panels.filter((q) => q !== p);
      p.root.remove();
      if (!page.panels.length) page.add(defaults());
      page.save();
    };
    main.append(list, el('button', {class: 'add-panel', onclick: () => page.add(defaults()).expr.focus()}, 'Add Panel'));
    const states = readURL();
    if (!states.length) states.push(defaults());
    for (const s of states) {
      const p = page.add(s);
      p.autosize();
      if (s.expr) p.run();
    }
  };
})();

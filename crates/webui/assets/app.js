'use strict';
// Shared helpers and the page router of the embedded UI. Pages register themselves in
// App.pages; App.start() draws the navigation and the page the URL names.

const App = (() => {
  const prefix = window.PATH_PREFIX || '';
  const pages = {};

  // el('div', {class: 'x', onclick: f}, child, 'text', ...)
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (k === 'text') node.textContent = v;
      else node.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
  }

  // Calls the HTTP API; resolves to the whole answer ({status, data, warnings, infos}) or
  // throws an Error carrying the API's message.
  async function api(path, params, options) {
    const opts = options || {};
    const url = prefix + '/api/v1/' + path;
    let resp;
    if (opts.post) {
      resp = await fetch(url, {
        method: 'POST',
        body: new URLSearchParams(params || {}),
        headers: {'Content-Type': 'application/x-www-form-urlencoded'},
        signal: opts.signal,
      });
    } else {
      const q = params ? '?' + new URLSearchParams(params) : '';
      resp = await fetch(url + q, {signal: opts.signal});
    }
    let body;
    try {
      body = await resp.json();
    } catch (e) {
      throw new Error(`${resp.status} ${resp.statusText} from ${path}`);
    }
    if (body.status !== 'success') {
      const err = new Error(body.error || `${resp.status} ${resp.statusText}`);
      err.type = body.errorType;
      throw err;
    }
    return body;
  }

  const pad = (n, w) => String(n).padStart(w || 2, '0');

  // 2026-12-03 10:04:05 (UTC), from milliseconds.
  function formatTime(ms) {
    const d = new Date(ms);
    if (isNaN(d.getTime())) return String(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }

  // Milliseconds of "2026-12-03 10:04:05", "2026-12-03T10:04:05Z" or a Unix time; NaN if bad.
  function parseTime(s) {
    const t = s.trim();
    if (/^\d+(\.\d+)?$/.test(t)) return parseFloat(t) * 1000;
    const m = t.match(/^(\d{4})-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?)?Z?$/);
    if (!m) return NaN;
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0),
      m[7] ? Math.round(parseFloat('0.' + m[7]) * 1000) : 0);
  }

  const UNITS = [['y', 31536e6], ['w', 6048e5], ['d', 864e5], ['h', 36e5], ['m', 6e4], ['s', 1e3], ['ms', 1]];

  // Milliseconds of a Prometheus duration such as 1h30m; NaN if bad.
  function parseDuration(s) {
    const t = s.trim();
    if (!t) return NaN;
    if (/^\d+(\.\d+)?$/.test(t)) return parseFloat(t) * 1000;
    const re = /(\d+)(ms|y|w|d|h|m|s)/g;
    let total = 0;
    let used = 0;
    let m;
    while ((m = re.exec(t)) !== null) {
      if (m.index !== used) return NaN;
      total += +m[1] * UNITS.find((u) => u[0] === m[2])[1];
      used = re.lastIndex;
    }
    return used === t.length ? total : NaN;
  }

  function formatDuration(ms) {
    if (ms <= 0) return '0s';
    let rest = ms;
    let out = '';
    for (const [u, n] of UNITS) {
      if (rest >= n) {
        out += Math.floor(rest / n) + u;
        rest %= n;
      }
    }
    return out;
  }

  // name{a="b", c="d"} as Prometheus's UI writes a series.
  function seriesName(metric) {
    const m = metric || {};
    const labels = Object.keys(m).filter((k) => k !== '__name__').sort()
      .map((k) => `${k}=${JSON.stringify(m[k])}`);
    return (m.__name__ || '') + (labels.length || !m.__name__ ? `{${labels.join(', ')}}` : '');
  }

  function labelChips(labels) {
    const keys = Object.keys(labels || {}).sort();
    if (!keys.length) return el('span', {class: 'muted'}, 'none');
    return el('span', {class: 'labels'}, keys.map((k) => el('span', {}, `${k}="${labels[k]}"`)));
  }

  const NAV = {
    query: [['graph', 'Graph'], ['stores', 'Stores'], ['rules', 'Rules'], ['alerts', 'Alerts'], ['flags', 'Flags'], ['status', 'Status']],
    bucket: [['blocks', 'Blocks']],
    store: [['loaded', 'Loaded blocks'], ['blocks', 'Bucket']],
  };

  function start() {
    const app = window.APP || 'query';
    const items = NAV[app] || [];
    const path = location.pathname.replace(/\/+$/, '');
    const name = path.slice(path.lastIndexOf('/') + 1) || items[0][0];
    const nav = document.getElementById('nav');
    nav.append(el('a', {class: 'brand', href: `${prefix}/${items[0][0]}`}, 'Gauntlet'));
    for (const [page, title] of items) {
      nav.append(el('a', {href: `${prefix}/${page}`, class: page === name ? 'active' : null}, title));
    }
    const main = document.getElementById('main');
    const render = pages[name];
    if (!render) {
      main.append(el('div', {class: 'error'}, `No page ${name}.`));
      return;
    }
    document.title = `${(items.find((i) => i[0] === name) || [0, name])[1]} - Gauntlet`;
    Promise.resolve(render(main)).catch((e) => main.append(el('div', {class: 'error'}, e.message)));
  }

  return {prefix, pages, el, escapeHtml, api, formatTime, parseTime, parseDuration, formatDuration, seriesName, labelChips, start};
})();

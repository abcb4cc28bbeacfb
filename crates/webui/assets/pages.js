'use strict';
// The querier's other pages: stores, rules, alerts, flags and status.

(() => {
  const {el, api, formatTime, labelChips} = App;
  const NO_TIME = [9223372036854775807, -9223372036854775808];

  function timeCell(ms) {
    if (ms >= 9.2e18) return el('td', {class: 'num muted'}, '+Inf');
    if (ms <= -9.2e18) return el('td', {class: 'num muted'}, '-Inf');
    return el('td', {class: 'num'}, formatTime(ms));
  }

  function refreshing(main, title, load, every) {
    const body = el('div', {});
    const when = el('span', {class: 'muted'});
    main.append(el('div', {class: 'toolbar'}, el('h1', {}, title), when), body);
    const tick = async () => {
      try {
        const parts = await load();
        body.replaceChildren(...parts);
        when.textContent = `updated ${formatTime(Date.now())} UTC`;
      } catch (e) {
        body.replaceChildren(el('div', {class: 'error'}, e.message));
      }
      main.dataset.loaded = String(Date.now());
    };
    tick();
    if (every) {
      const timer = setInterval(() => { if (document.hidden) return; tick(); }, every);
      window.addEventListener('pagehide', () => clearInterval(timer));
    }
  }

  App.pages.stores = (main) => refreshing(main, 'Stores', async () => {
    const data = (await api('stores')).data || {};
    const types = Object.keys(data).sort();
    if (!types.length) return [el('div', {class: 'muted'}, 'No endpoints configured.')];
    return types.map((type) => {
      const rows = (data[type] || []).slice().sort((a, b) => a.name.localeCompare(b.name)).map((s) => {
        const up = !s.lastError;
        // An endpoint that never answered announces no time range.
        const noTime = (s.minTime === 0 && s.maxTime === 0) || (NO_TIME.includes(s.minTime) && NO_TIME.includes(s.maxTime));
        return el('tr', {class: 'store', 'data-name': s.name, 'data-health': up ? 'up' : 'down'},
          el('td', {class: 'mono'}, s.name),
          el('td', {}, el('span', {class: `badge ${up ? 'up' : 'down'}`}, up ? 'Up' : 'Down')),
          el('td', {}, (s.labelSets || []).length ? (s.labelSets || []).map((l) => el('div', {}, labelChips(l))) : el('span', {class: 'muted'}, 'none')),
          noTime ? el('td', {class: 'muted'}, '-') : timeCell(s.minTime),
          noTime ? el('td', {class: 'muted'}, '-') : timeCell(s.maxTime),
          el('td', {class: 'num'}, s.lastCheck ? formatTime(Date.parse(s.lastCheck)) : '-'),
          el('td', {class: 'error-cell'}, s.lastError || ''));
      });
      const up = rows.filter((r) => r.dataset.health === 'up').length;
      return el('section', {class: 'store-type', 'data-type': type},
        el('h2', {}, `${type || 'unknown'} `, el('span', {class: 'muted'}, `(${up}/${rows.length} up)`)),
        el('table', {},
          el('thead', {}, el('tr', {}, ['Endpoint', 'Status', 'Announced label sets', 'Min time', 'Max time',
            'Last health check', 'Last error'].map((h) => el('th', {}, h)))),
          el('tbody', {}, rows)));
    });
  }, 5000);

  function ruleState(rule) {
    if (rule.health && rule.health !== 'ok' && rule.health !== 'unknown') return ['err', rule.health];
    if (rule.type === 'alerting') return [rule.state || 'inactive', rule.state || 'inactive'];
    return [rule.health || 'unknown', rule.health || 'unknown'];
  }

  App.pages.rules = (main) => refreshing(main, 'Rules', async () => {
    const groups = (await api('rules')).data.groups || [];
    if (!groups.length) return [el('div', {class: 'muted'}, 'No rules: no ruler or Prometheus with rules is connected.')];
    return groups.map((g) => el('section', {class: 'rule-group'},
      el('h2', {}, g.name, ' ', el('span', {class: 'muted'}, `${g.file || ''} \u00b7 every ${g.interval}s`)),
      el('table', {},
        el('thead', {}, el('tr', {}, ['Rule', 'State', 'Error', 'Last evaluation', 'Evaluation time'].map((h) => el('th', {}, h)))),
        el('tbody', {}, (g.rules || []).map((r) => {
          const [cls, text] = ruleState(r);
          return el('tr', {},
            el('td', {class: 'mono'}, `${r.type === 'alerting' ? 'alert' : 'record'}: ${r.name}`, el('br', {}),
              el('span', {class: 'muted'}, `expr: ${r.query}`)),
            el('td', {}, el('span', {class: `badge ${cls}`}, text)),
            el('td', {}, r.lastError || ''),
            el('td', {class: 'num'}, r.lastEvaluation ? formatTime(Date.parse(r.lastEvaluation)) : '-'),
            el('td', {class: 'num'}, r.evaluationTime !== undefined ? `${(r.evaluationTime * 1000).toFixed(2)}ms` : '-'));
        })))));
  }, 15000);

  App.pages.alerts = (main) => refreshing(main, 'Alerts', async () => {
    const groups = (await api('rules', {type: 'alert'})).data.groups || [];
    const rules = groups.flatMap((g) => (g.rules || []).filter((r) => r.type === 'alerting').map((r) => [g, r]));
    if (!rules.length) return [el('div', {class: 'muted'}, 'No alerting rules.')];
    const counts = {firing: 0, pending: 0, inactive: 0};
    for (const [, r] of rules) counts[r.state || 'inactive'] = (counts[r.state || 'inactive'] || 0) + 1;
    const order = {firing: 0, pending: 1, inactive: 2};
    rules.sort((a, b) => (order[a[1].state] ?? 3) - (order[b[1].state] ?? 3));
    return [
      el('div', {class: 'toolbar'}, ['firing', 'pending', 'inactive'].map((s) =>
        el('span', {class: `badge ${s}`}, `${s} (${counts[s] || 0})`))),
      ...rules.map(([g, r]) => el('details', {class: `panel alert-rule state-${r.state}`, open: r.state !== 'inactive'},
        el('summary', {}, el('span', {class: `badge ${r.state}`}, r.state), ' ', el('strong', {}, r.name),
          ' ', el('span', {class: 'muted'}, `${g.name} \u00b7 ${(r.alerts || []).length} active`)),
        el('pre', {}, `expr: ${r.query}` + (r.duration ? `\nfor: ${r.duration}s` : '')),
        (r.alerts || []).length ? el('table', {},
          el('thead', {}, el('tr', {}, ['Labels', 'State', 'Active since', 'Value', 'Annotations'].map((h) => el('th', {}, h)))),
          el('tbody', {}, r.alerts.map((a) => el('tr', {},
            el('td', {}, labelChips(a.labels)),
            el('td', {}, el('span', {class: `badge ${a.state}`}, a.state)),
            el('td', {class: 'num'}, a.activeAt ? formatTime(Date.parse(a.activeAt)) : '-'),
            el('td', {class: 'num'}, a.value),
            el('td', {}, labelChips(a.annotations)))))) : null)),
    ];
  }, 15000);

  function keyValueTable(obj) {
    return el('table', {}, el('tbody', {}, Object.keys(obj).sort().map((k) =>
      el('tr', {}, el('th', {style: 'width:30%'}, k), el('td', {class: 'mono'}, String(obj[k]))))));
  }

  App.pages.flags = (main) => {
    const filter = el('input', {placeholder: 'Filter', class: 'filter'});
    const body = el('div', {});
    main.append(el('div', {class: 'toolbar'}, el('h1', {}, 'Command-line flags'), filter), body);
    api('status/flags').then((r) => {
      const draw = () => {
        const f = filter.value.toLowerCase();
        const shown = Object.fromEntries(Object.entries(r.data || {})
          .filter(([k, v]) => k.toLowerCase().includes(f) || String(v).toLowerCase().includes(f)));
        body.replaceChildren(keyValueTable(shown));
      };
      filter.addEventListener('input', draw);
      draw();
    }).catch((e) => body.replaceChildren(el('div', {class: 'error'}, e.message)));
  };

  App.pages.status = async (main) => {
    main.append(el('h1', {}, 'Status'));
    for (const [title, path] of [['Runtime information', 'status/runtimeinfo'], ['Build information', 'status/buildinfo']]) {
      const section = el('section', {}, el('h2', {}, title));
      main.append(section);
      try {
        section.append(keyValueTable((await api(path)).data || {}));
      } catch (e) {
        section.append(el('div', {class: 'error'}, e.message));
      }
    }
  };
})();

'use strict';
// The block viewer: the bucket's blocks on a timeline, one section per group (external
// labels), one lane per resolution and compaction level; a click shows a block's meta.

(() => {
  const {el, api, formatTime, formatDuration, labelChips} = App;
  const LEVEL_COLORS = ['#9ecae1', '#6baed6', '#4292c6', '#2171b5', '#08519c', '#08306b'];
  const RESOLUTIONS = {0: 'raw', 300000: '5m', 3600000: '1h'};

  const resolutionOf = (b) => (b.thanos && b.thanos.downsample && b.thanos.downsample.resolution) || 0;
  const labelsOf = (b) => (b.thanos && b.thanos.labels) || {};
  const groupKey = (labels) => JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));

  // Blocks of one lane into rows where none overlap.
  function rows(blocks) {
    const out = [];
    for (const b of blocks.slice().sort((x, y) => x.minTime - y.minTime)) {
      const row = out.find((r) => r[r.length - 1].maxTime <= b.minTime);
      if (row) row.push(b); else out.push([b]);
    }
    return out;
  }

  // Buttons writing a deletion or no-compact mark (Thanos's admin operations).
  function markButtons(b, marks, redraw) {
    const detailInput = el('input', {class: 'mark-detail', placeholder: 'Detail (optional)'});
    const status = el('span', {class: 'mark-status muted'});
    const button = (action, mark, title) => el('button', {
      class: `mark-${mark}`,
      disabled: marks.includes(mark),
      onclick: async () => {
        status.textContent = 'marking...';
        try {
          await api('blocks/mark', {id: b.ulid, action, detail: detailInput.value}, {post: true});
          marks.push(mark);
          redraw();
        } catch (e) {
          status.textContent = '';
          status.append(el('span', {class: 'error'}, e.message));
        }
      },
    }, title);
    return el('div', {class: 'toolbar'}, button('DELETION', 'deletion', 'Mark for deletion'),
      button('NO_COMPACTION', 'no-compact', 'Mark no compaction'), detailInput, status);
  }

  function detail(b, marks, redraw) {
    const st = b.stats || {};
    const c = b.compaction || {};
    const fields = [
      ['ULID', b.ulid],
      ['Start time', `${formatTime(b.minTime)} UTC (${b.minTime})`],
      ['End time', `${formatTime(b.maxTime)} UTC (${b.maxTime})`],
      ['Duration', formatDuration(b.maxTime - b.minTime)],
      ['Series', st.numSeries ?? '-'],
      ['Samples', st.numSamples ?? '-'],
      ['Chunks', st.numChunks ?? '-'],
      ['Resolution', RESOLUTIONS[resolutionOf(b)] || `${resolutionOf(b)}ms`],
      ['Level', c.level],
      ['Source', (b.thanos && b.thanos.source) || '-'],
      ['Marks', (marks || []).join(', ') || 'none'],
    ];
    return el('div', {class: 'detail', 'data-ulid': b.ulid},
      el('h2', {}, `Block ${b.ulid}`),
      el('table', {}, el('tbody', {}, fields.map(([k, v]) => el('tr', {}, el('th', {}, k), el('td', {class: 'mono'}, String(v)))),
        el('tr', {}, el('th', {}, 'Labels'), el('td', {}, labelChips(labelsOf(b)))),
        el('tr', {}, el('th', {}, `Sources (${(c.sources || []).length})`),
          el('td', {class: 'mono'}, (c.sources || []).map((s) => el('div', {}, s)))))),
      redraw ? markButtons(b, marks, redraw) : null);
  }

  function axis(min, max) {
    const span = Math.max(max - min, 1);
    const steps = [3600e3, 6 * 3600e3, 86400e3, 7 * 86400e3, 30 * 86400e3, 365 * 86400e3];
    const step = steps.find((s) => span / s <= 10) || steps[steps.length - 1];
    const ticks = [];
    for (let t = Math.ceil(min / step) * step; t <= max; t += step) {
      ticks.push(el('span', {style: `left:${((t - min) / span) * 100}%`},
        step >= 86400e3 ? formatTime(t).slice(0, 10) : formatTime(t).slice(5, 16)));
    }
    return el('div', {class: 'axis'}, ticks);
  }

  function render(main, info, view) {
    const blocks = info.blocks || [];
    const marks = info.marks || {};
    const out = [];
    if (info.err) out.push(el('div', {class: 'error'}, `Last refresh failed: ${info.err}`));
    if (!blocks.length) {
      out.push(el('div', {class: 'muted'}, view === 'loaded' ? 'No blocks loaded.' : 'No blocks in the bucket.'));
      return out;
    }
    const min = Math.min(...blocks.map((b) => b.minTime));
    const max = Math.max(...blocks.map((b) => b.maxTime));
    const span = Math.max(max - min, 1);
    const groups = new Map();
    for (const b of blocks) {
      const k = groupKey(labelsOf(b));
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(b);
    }
    const info_ = el('div', {class: 'detail-holder'});
    let selected = null;
    const sorted = [...groups.entries()].sort((a, b) => a[0].localeCompare(b[0]));
    for (const [, gblocks] of sorted) {
      const labels = labelsOf(gblocks[0]);
      const title = info.label && labels[info.label] !== undefined ? `${info.label}=${labels[info.label]}` : null;
      const lanes = new Map();
      for (const b of gblocks) {
        const k = `${resolutionOf(b)}/${(b.compaction || {}).level || 0}`;
        if (!lanes.has(k)) lanes.set(k, []);
        lanes.get(k).push(b);
      }
      const laneKeys = [...lanes.keys()].sort((a, b) => {
        const [ra, la] = a.split('/').map(Number);
        const [rb, lb] = b.split('/').map(Number);
        return ra - rb || la - lb;
      });
      const section = el('section', {class: 'timeline group', 'data-group': groupKey(labels)},
        el('div', {class: 'toolbar'}, title ? el('strong', {}, title) : null, labelChips(labels),
          el('span', {class: 'muted'}, `${gblocks.length} blocks`)),
        axis(min, max));
      for (const k of laneKeys) {
        const [res, level] = k.split('/').map(Number);
        rows(lanes.get(k)).forEach((row, i) => {
          const lane = el('div', {class: 'lane', 'data-resolution': RESOLUTIONS[res] || res, 'data-level': level},
            el('span', {class: 'lane-title'}, i ? '' : `${RESOLUTIONS[res] || res + 'ms'} \u00b7 level ${level}`));
          for (const b of row) {
            const left = ((b.minTime - min) / span) * 100;
            const width = ((b.maxTime - b.minTime) / span) * 100;
            if (!marks[b.ulid]) marks[b.ulid] = [];
            const m = marks[b.ulid];
            const node = el('div', {
              class: 'block' + (m.length ? ' marked' : ''),
              'data-ulid': b.ulid, 'data-level': level, 'data-resolution': RESOLUTIONS[res] || res,
              title: `${b.ulid}\n${formatTime(b.minTime)} - ${formatTime(b.maxTime)} UTC` + (m.length ? `\nmarks: ${m.join(', ')}` : ''),
              style: `left:${left}%;width:${width}%;background-color:${LEVEL_COLORS[Math.min(level, LEVEL_COLORS.length) - 1] || '#999'}`,
              onclick: () => {
                if (selected) selected.classList.remove('selected');
                selected = node;
                node.classList.add('selected');
                const show = () => {
                  node.classList.toggle('marked', m.length > 0);
                  info_.replaceChildren(detail(b, m, view === 'loaded' ? null : show));
                };
                show();
              },
            });
            lane.append(node);
          }
          section.append(lane);
        });
      }
      out.push(section);
    }
    out.push(info_);
    return out;
  }

  function viewer(view) {
    return (main) => {
      const body = el('div', {});
      const filter = el('input', {placeholder: 'Filter by label or ULID', class: 'filter'});
      const when = el('span', {class: 'muted'});
      main.append(el('div', {class: 'toolbar'},
        el('h1', {}, view === 'loaded' ? 'Loaded blocks' : 'Blocks'), filter, when), body);
      let data = null;
      const draw = () => {
        const f = filter.value.trim().toLowerCase();
        const blocks = (data.blocks || []).filter((b) => !f || b.ulid.toLowerCase().includes(f) ||
          JSON.stringify(labelsOf(b)).toLowerCase().includes(f));
        body.replaceChildren(...render(main, {...data, blocks}, view));
        when.textContent = `${blocks.length} blocks \u00b7 refreshed ${data.refreshedAt}`;
        main.dataset.loaded = String(Date.now());
      };
      filter.addEventListener('input', () => data && draw());
      api('blocks', view === 'loaded' ? {view: 'loaded'} : null).then((r) => {
        data = r.data;
        draw();
      }).catch((e) => body.replaceChildren(el('div', {class: 'error'}, e.message)));
    };
  }

  App.pages.blocks = viewer('global');
  App.pages.loaded = viewer('loaded');
})();

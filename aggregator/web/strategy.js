// The Strategy view (#/strategy): the strategy's targets beside the live board, from
// /api/v1/targets (docs/strategy-progress.md). Per pillar and goal, each target with its status
// written out and coloured, a small chart (baseline, readings, the target line and the straight
// path to it) and a drill-down to its readings (#/target/<id>). Never mixed into the board's
// operational status. All data is inserted as text, never as HTML.
'use strict';

window.PostwatchStrategy = ({ $, h, svg, api, state }) => {
  const POLL_MS = 10000;  // while the view is shown; the figures change rarely
  // Status -> [words, colour class]. The colour follows the interim report's kind of result.
  const WORDS = {
    achieved: 'achieved', on_track: 'on track', too_slow: 'improving, too slowly', stagnating: 'stagnating',
    moving_away: 'moving away', no_data: 'no data yet', planned: 'planned', done: 'done',
    postponed: 'postponed', cancelled: 'cancelled', overdue: 'overdue',
  };
  const RESULT_CLASS = { positive: 'green', lagging: 'amber', moved_away: 'red', impossible: 'impossible', open: 'unknown' };
  const RESULT_WORDS = { positive: 'positive', lagging: 'lagging', moved_away: 'moved away', impossible: 'impossible or postponed', open: 'not yet judged' };
  const RESULT_ORDER = ['moved_away', 'lagging', 'impossible', 'open', 'positive'];
  let data = null;
  let timer = null;

  const statusPill = (t) => h('span', { class: `pill status-${RESULT_CLASS[t.result]}`, title: RESULT_WORDS[t.result] },
    WORDS[t.status] || t.status);
  const num = (v) => (v === null || v === undefined ? '–' : String(Math.round(v * 100) / 100));
  const date = (ms) => new Date(ms).toISOString().slice(0, 10);

  // Baseline, readings, the target line and the straight path to it, in a 200×60 box.
  function chart(t) {
    const s = svg('svg', { class: 'target-chart', viewBox: '0 0 200 60', preserveAspectRatio: 'none', role: 'img',
                           'aria-label': `readings of ${t.id}` });
    const pts = t.readings.map((r) => ({ t: r.at_ms, v: r.value }));
    const base = t.baseline ? { t: t.baseline.at_ms, v: t.baseline.value } : null;
    const goal = t.target && t.target.value !== null ? t.target.value : null;
    const by = t.target && t.target.by ? Date.parse(`${t.target.by}T00:00:00Z`) : null;
    const times = [...pts.map((p) => p.t), base && base.t, by, data.at_ms].filter((x) => x);
    const values = [...pts.map((p) => p.v), base && base.v, goal].filter((x) => x !== null && x !== undefined);
    if (times.length < 1 || values.length < 1) return s;
    let t0 = Math.min(...times), t1 = Math.max(...times);
    if (t1 - t0 < 86400000) t0 = t1 - 365 * 86400000;
    let v0 = Math.min(...values), v1 = Math.max(...values);
    const pad = (v1 - v0) * 0.15 || Math.abs(v1) * 0.1 || 1;
    v0 -= pad;
    v1 += pad;
    const x = (tt) => 4 + ((tt - t0) / (t1 - t0)) * 192;
    const y = (v) => 56 - ((v - v0) / (v1 - v0)) * 52;
    if (goal !== null) s.append(svg('line', { class: 'target-line', x1: 0, x2: 200, y1: y(goal), y2: y(goal) }));
    const from = base || (pts.length ? pts[0] : null);
    if (goal !== null && by && from) s.append(svg('line', { class: 'target-path', x1: x(from.t), y1: y(from.v), x2: x(by), y2: y(goal) }));
    if (base) s.append(svg('circle', { class: 'target-baseline', cx: x(base.t), cy: y(base.v), r: 2.5 }));
    if (pts.length > 1)
      s.append(svg('polyline', { class: 'target-readings', points: pts.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ') }));
    for (const p of pts) s.append(svg('circle', { class: 'target-reading', cx: x(p.t), cy: y(p.v), r: 2 }));
    return s;
  }

  function figureLine(t) {
    const parts = [`now ${num(t.current)}`, `target ${num(t.target.value)}${t.target.by ? ` by ${t.target.by}` : ' (ongoing)'}`];
    if (t.trend_per_year !== null) parts.push(`trend ${num(t.trend_per_year)}/yr`);
    if (t.required_per_year !== null) parts.push(`needs ${num(t.required_per_year)}/yr`);
    return `${parts.join(' · ')}${t.unit ? ` (${t.unit})` : ''}`;
  }

  function targetRow(t) {
    const figure = t.kind !== 'milestone';
    return h('li', { class: `target result-${t.result}`, id: `target-${t.id}`, tabindex: '0', role: 'button',
                     'data-status': t.status, 'aria-label': `${t.commitment}: ${WORDS[t.status] || t.status}`,
                     onclick: () => { location.hash = `#/target/${encodeURIComponent(t.id)}`; },
                     onkeydown: (ev) => { if (ev.key === 'Enter') location.hash = `#/target/${encodeURIComponent(t.id)}`; } },
      h('div', { class: 'target-head' }, statusPill(t), h('span', { class: 'target-name', title: t.commitment }, t.commitment)),
      figure ? h('div', { class: 'target-body' }, chart(t), h('span', { class: 'target-figures' }, figureLine(t)))
             : h('div', { class: 'target-figures' }, [t.due ? `due ${t.due}` : 'no date', t.state_note].filter(Boolean).join(' · ')));
  }

  function render() {
    const root = $('strategy');
    if (!data) return;
    const byGoal = new Map();
    for (const t of data.targets) {
      if (!byGoal.has(t.goal)) byGoal.set(t.goal, []);
      byGoal.get(t.goal).push(t);
    }
    const c = data.counts.by_result;
    $('strategy-summary').replaceChildren(
      ...RESULT_ORDER.map((r) => h('li', { class: `tally status-${RESULT_CLASS[r]}` }, h('b', null, String(c[r] || 0)), ` ${RESULT_WORDS[r]}`)),
      h('li', { class: 'tally' }, `assessed ${data.at}, trends since ${data.from}`));
    const pillars = [...state.pillars.values()];
    root.replaceChildren(...pillars.map((p) => h('section', { class: 'strategy-pillar' },
      h('h2', { class: 'pillar-name' }, p.name),
      p.goals.map((gid) => {
        const g = state.goals.get(gid);
        const list = (byGoal.get(gid) || []).slice()
          .sort((a, b) => RESULT_ORDER.indexOf(a.result) - RESULT_ORDER.indexOf(b.result));
        return h('article', { class: 'strategy-goal', id: `strategy-goal-${gid}` },
          h('h3', null, h('span', { class: 'goal-id' }, `GOAL ${gid}`), ' ', g ? g.name : ''),
          list.length ? h('ol', { class: 'targets' }, list.map(targetRow))
                      : h('p', { class: 'empty' }, 'No target in the catalogue.'));
      }))));
  }

  async function load() {
    try {
      data = await api('/api/v1/targets');
      render();
    } catch (e) {
      $('strategy').replaceChildren(h('p', { class: 'error' }, `Cannot load the targets: ${e.message}`));
    }
  }

  // The drill-down: one target's readings and the data behind its status.
  async function showTarget(id) {
    if (!data) data = await api('/api/v1/targets');
    const t = data.targets.find((x) => x.id === id);
    $('crumbs').replaceChildren(h('a', { href: '#/strategy' }, 'Strategy'), h('span', { class: 'sep' }, '›'), h('span', null, id));
    if (!t) {
      $('drill-title').replaceChildren(`No target '${id}'`);
      $('drill-body').replaceChildren();
      return;
    }
    $('drill-title').replaceChildren(statusPill(t), ` ${t.commitment}`);
    const facts = [['goal', String(t.goal)], ['result areas', t.threats.join(', ') || '–'],
      ['kind of result', RESULT_WORDS[t.result]], ['source', t.source]];
    if (t.kind === 'milestone') {
      facts.push(['state', t.state], ['due', t.due || 'no date'], ['note', t.state_note || '–']);
    } else {
      facts.push([t.kind === 'ratio' ? 'formula' : 'indicator',
                  t.kind === 'ratio' ? `${t.numerator} / ${t.denominator} × ${t.factor}` : t.indicator],
        ['baseline', t.baseline ? `${num(t.baseline.value)} on ${t.baseline.at}` : (t.baseline_note || 'none')],
        ['target', `${num(t.target.value)} ${t.target.by ? `by ${t.target.by}` : '(ongoing)'}, ${t.target.better} is better`],
        ['current', num(t.current)], ['progress', t.progress === null ? '–' : `${Math.round(t.progress * 100)}%`],
        ['trend', t.trend_per_year === null ? '–' : `${num(t.trend_per_year)} a year (${t.points} points)`],
        ['required', t.required_per_year === null ? '–' : `${num(t.required_per_year)} a year`]);
    }
    $('drill-body').replaceChildren(
      h('dl', { class: 'facts' }, facts.map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, v)))),
      t.kind === 'milestone' ? null : h('div', { class: 'target-chart-large' }, chart(t)),
      t.kind === 'milestone' ? null : h('h3', null, 'Readings'),
      t.kind === 'milestone' ? null : (t.readings.length === 0 ? h('p', null, 'No reading yet.') :
        h('table', { class: 'grid', id: 'drill-readings' },
          h('thead', null, h('tr', null, h('th', null, 'date'), h('th', null, 'value'))),
          h('tbody', null, t.readings.slice().reverse().map((r) =>
            h('tr', null, h('td', null, r.at), h('td', { class: 'num' }, num(r.value))))))));
  }

  // The progress report (GET /api/v1/report) as a file: fetched with the token in the header,
  // as every API call is, then handed to the browser to open or save.
  async function downloadReport(format) {
    const err = $('report-error');
    err.hidden = true;
    try {
      const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
      const res = await fetch(`/api/v1/report?format=${format}`, { headers, cache: 'no-store' });
      if (!res.ok) {
        let msg = `HTTP ${res.status}`;
        try { msg = (await res.json()).error.message; } catch (e) { /* not JSON */ }
        throw new Error(msg);
      }
      const url = URL.createObjectURL(await res.blob());
      const a = h('a', { href: url, download: `postwatch-report.${format}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (e) {
      err.textContent = `The report could not be made: ${e.message}`;
      err.hidden = false;
    }
  }
  $('report-html').addEventListener('click', () => downloadReport('html'));
  $('report-csv').addEventListener('click', () => downloadReport('csv'));

  // Shows or hides the view; the live board's parts are hidden while it is shown.
  function show(on) {
    document.body.classList.toggle('strategy-mode', on);
    $('strategy-view').hidden = !on;
    for (const a of document.querySelectorAll('.view-tabs a'))
      a.setAttribute('aria-current', (a.getAttribute('href') === '#/strategy') === on ? 'page' : 'false');
    clearInterval(timer);
    timer = null;
    if (on) {
      load();
      timer = setInterval(load, POLL_MS);
    }
  }

  return { show, showTarget, date };
};

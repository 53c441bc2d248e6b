// Postwatch operations-centre dashboard. Vanilla JS, no dependencies, served by the
// aggregator itself (embedded at build time). Data comes from /api/v1 (JSON) and
// live updates from the WebSocket /api/v1/stream; when the stream is down the page
// polls and reconnects with backoff. All data is inserted as text, never as HTML.
'use strict';

(() => {
  const TOKEN_KEY = 'postwatch.token';
  const OPERATOR_KEY = 'postwatch.operatorToken';
  const HISTORY_WINDOW_MS = 24 * 3600 * 1000;
  const POLL_BOARD_MS = 5000;      // goals and alarms, while the stream is down
  const POLL_SIDE_MS = 15000;      // posts (silent), stats (agents online), threats
  const POLL_HISTORY_MS = 60000;   // sparklines
  const RANK = { unknown: 0, green: 1, amber: 2, red: 3 };
  const DENSE_ALARMS = 6;          // more open alarms than this: one line each

  const state = {
    token: null,
    operatorToken: null,
    whoami: null,
    goals: new Map(),    // id -> goal snapshot
    pillars: new Map(),  // id -> pillar snapshot
    alarms: new Map(),   // id -> alarm (open ones, plus acknowledged/cleared updates)
    history: new Map(),  // goal id -> [{t, score, status}]
    threats: [],
    posts: [],
    postsById: new Map(),
    agentsOnline: null,
    notify: null,  // /api/v1/stats' notification figures, when --notifications is set
    boardBuilt: false,
    ws: null,
    wsLive: false,
    wsAttempt: 0,
    wsTimer: null,
    lastUpdate: 0,
    drill: null,         // current drill-down route
    regionNames: new Map(),
    authPending: null,   // the promise of an open token prompt
  };

  // ---------------------------------------------------------------- helpers

  const $ = (id) => document.getElementById(id);

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  function svg(tag, attrs) {
    const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return el;
  }

  const pill = (status) => h('span', { class: `pill status-${status}` }, status);
  const fmtScore = (s) => (s === null || s === undefined ? '–' : String(Math.round(s)));
  const pad = (n) => String(n).padStart(2, '0');

  function fmtTime(ms) {
    if (!ms) return 'never';
    const d = new Date(ms);
    return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
  }

  // "57s", "3m", "2h", "4d": the dense alarm list's age column has one width whatever the age,
  // so a title never wraps because time passed (a wall screen must not grow past its height).
  function fmtAgeShort(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m`;
    if (s < 86400) return `${Math.floor(s / 3600)}h`;
    return `${Math.floor(s / 86400)}d`;
  }

  function fmtAgo(ms) {
    if (!ms) return 'never';
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  function fmtValue(v, unit) {
    if (v === null || v === undefined) return '–';
    const n = Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-GB') : String(Math.round(v * 100) / 100);
    return unit && unit !== 'level' ? `${n} ${unit}` : n;
  }

  function notice(text) {
    const el = $('notice');
    el.textContent = text || '';
    el.hidden = !text;
  }

  // ---------------------------------------------------------------- access

  function initToken() {
    const url = new URL(location.href);
    const t = url.searchParams.get('token');
    if (t) {
      sessionStorage.setItem(TOKEN_KEY, t);
      url.searchParams.delete('token');
      // Keep the token out of the address bar, the history and screenshots.
      history.replaceState(null, '', url.pathname + url.search + url.hash);
    }
    state.token = sessionStorage.getItem(TOKEN_KEY);
    state.operatorToken = sessionStorage.getItem(OPERATOR_KEY);
  }

  // Asks for a read token; resolves once one is stored. One prompt at a time.
  function promptToken(message) {
    if (state.authPending) return state.authPending;
    state.authPending = new Promise((resolve) => {
      const dlg = $('token-dialog');
      $('token-text').textContent = message;
      $('token-error').hidden = true;
      $('token-input').value = '';
      const done = (ev) => {
        ev.preventDefault();
        const v = $('token-input').value.trim();
        if (!v) return;
        sessionStorage.setItem(TOKEN_KEY, v);
        state.token = v;
        dlg.close();
        $('token-form').removeEventListener('submit', done);
        state.authPending = null;
        resolve();
      };
      $('token-form').addEventListener('submit', done);
      if (!dlg.open) dlg.showModal();
    });
    return state.authPending;
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers);
    const token = options.token !== undefined ? options.token : state.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(path, { method: options.method || 'GET', headers, body: options.body, cache: 'no-store' });
    if (res.status === 401 && !options.noPrompt) {
      await promptToken(state.token ? 'That token was not accepted. Enter an access token.'
                                    : 'This dashboard needs an access token (role read or operator).');
      return api(path, options);
    }
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (!res.ok) {
      const msg = body && body.error ? body.error.message : `HTTP ${res.status}`;
      throw new ApiError(res.status, msg);
    }
    return body;
  }

  // ---------------------------------------------------------------- board

  function buildBoard() {
    const board = $('board');
    board.replaceChildren();
    // A pillar with many goals (Defend has six) takes two columns, so the board fits a screen.
    let columns = 0;
    for (const p of state.pillars.values()) columns += p.goals.length > 4 ? 2 : 1;
    board.style.setProperty('--board-columns', String(Math.max(1, columns)));
    for (const p of state.pillars.values()) {
      const goals = h('div', { class: 'goals' });
      for (const id of p.goals) {
        const g = state.goals.get(id);
        if (!g) continue;
        goals.append(goalCard(g));
      }
      board.append(h('section', { class: `pillar status-${p.status}${p.goals.length > 4 ? ' wide' : ''}`,
                                  id: `pillar-${p.id}`, 'data-status': p.status },
        h('header', { class: 'pillar-head' },
          h('h2', { class: 'pillar-name' }, p.name, h('small', null, pillarLine(p))),
          h('span', { class: 'pillar-score', title: 'score in the band of its status (red 0–30, amber 35–65, green 70–100): the mean health of its known goals' }, fmtScore(p.score))),
        goals));
    }
    state.boardBuilt = true;
  }

  function pillarLine(p) {
    return `${p.status} · goals ${p.goals.join(', ')}`;
  }

  function goalCard(g) {
    const el = h('article', { class: 'goal', id: `goal-${g.id}`, tabindex: '0', role: 'button',
                              'aria-label': `Goal ${g.id}: ${g.name}` },
      h('div', { class: 'goal-head' }, h('span', { class: 'goal-id' }, `GOAL ${g.id}`), h('span', { class: 'pill' })),
      h('div', { class: 'goal-score', title: 'score in the band of the status (red 0–30, amber 35–65, green 70–100); within it, 100 = every indicator at baseline' },
        h('span', { class: 'score-value' })),
      h('h3', { class: 'goal-name' }, g.name),
      h('div', { class: 'goal-pending' }),
      sparkSvg(),
      h('div', { class: 'coverage', title: 'coverage: posts reporting now / posts that reported for this goal' },
        h('span', { class: 'coverage-label' }, 'coverage'), h('div', { class: 'bar' }, h('span')),
        h('span', { class: 'coverage-text' })));
    el.addEventListener('click', () => { location.hash = `#/goal/${g.id}`; });
    el.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); location.hash = `#/goal/${g.id}`; }
    });
    fillGoal(el, g, false);
    return el;
  }

  function fillGoal(el, g, flash) {
    const before = el.getAttribute('data-status');
    el.className = `goal status-${g.status}${g.low_coverage ? ' low-coverage' : ''}`;
    el.setAttribute('data-status', g.status);
    const p = el.querySelector('.goal-head .pill');
    p.className = `pill status-${g.status}`;
    p.textContent = g.status;
    const pending = el.querySelector('.goal-pending');
    pending.textContent = g.pending ? `→ ${g.pending.status.toUpperCase()} pending since ${fmtTime(g.pending.since_ms)}` : '';
    pending.hidden = !g.pending;
    el.querySelector('.score-value').textContent = fmtScore(g.score);
    const cov = typeof g.coverage === 'number' ? g.coverage : 0;
    el.querySelector('.bar > span').style.width = `${Math.round(cov * 100)}%`;
    el.querySelector('.coverage-text').textContent = g.posts_expected
      ? `${Math.round(cov * 100)}% · ${g.posts_reporting}/${g.posts_expected}${g.low_coverage ? ' · LOW' : ''}`
      : 'no post has reported yet';
    drawSpark(el.querySelector('.spark'), state.history.get(g.id) || [], g.status);
    if (flash && before && before !== g.status) {
      el.classList.remove('flash');
      void el.offsetWidth;  // restart the animation
      el.classList.add('flash');
    }
  }

  function sparkSvg() {
    const s = svg('svg', { class: 'spark', viewBox: '0 0 200 40', preserveAspectRatio: 'none', 'aria-hidden': 'true' });
    s.append(svg('line', { class: 'spark-base', x1: 0, y1: 38, x2: 200, y2: 38 }));
    s.append(svg('path', { class: 'spark-area', d: '' }));
    s.append(svg('polyline', { class: 'spark-line', points: '' }));
    return s;
  }

  // Score over the last 24 h (only while the goal was known), at most ~200 points.
  function drawSpark(el, points, status) {
    const now = Date.now();
    const known = points.filter((p) => p.status !== 'unknown' && p.t >= now - HISTORY_WINDOW_MS);
    const line = el.querySelector('.spark-line');
    const area = el.querySelector('.spark-area');
    if (known.length === 0) {
      line.setAttribute('points', '');
      area.setAttribute('d', '');
      return;
    }
    const t0 = Math.min(known[0].t, now - 60000);
    const span = Math.max(1, now - t0);
    const buckets = new Map();
    for (const p of known) buckets.set(Math.floor(((p.t - t0) / span) * 200), p);
    const xy = [...buckets.entries()].map(([x, p]) => [Math.min(200, x), 38 - (Math.max(0, Math.min(100, p.score)) / 100) * 36]);
    const last = xy[xy.length - 1];
    if (status !== 'unknown' && last[0] < 200) xy.push([200, last[1]]);  // holds until now
    if (xy.length === 1) xy.unshift([0, xy[0][1]]);
    line.setAttribute('points', xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' '));
    area.setAttribute('d', `M${xy[0][0].toFixed(1)},38 ` + xy.map(([x, y]) => `L${x.toFixed(1)},${y.toFixed(1)}`).join(' ') +
      ` L${xy[xy.length - 1][0].toFixed(1)},38 Z`);
  }

  function setGoal(g, flash) {
    const prev = state.goals.get(g.id);
    state.goals.set(g.id, Object.assign({}, prev, g));
    const merged = state.goals.get(g.id);
    const hist = state.history.get(g.id);
    if (hist && (!prev || prev.status !== merged.status || prev.score !== merged.score))
      hist.push({ t: Date.now(), score: merged.score === null ? 0 : merged.score, status: merged.status });
    const el = $(`goal-${g.id}`);
    if (el) fillGoal(el, merged, flash);
  }

  function setPillar(p) {
    state.pillars.set(p.id, Object.assign({}, state.pillars.get(p.id), p));
    const merged = state.pillars.get(p.id);
    const el = $(`pillar-${p.id}`);
    if (!el) return;
    el.className = `pillar status-${merged.status}${merged.goals.length > 4 ? ' wide' : ''}`;
    el.setAttribute('data-status', merged.status);
    el.querySelector('.pillar-score').textContent = fmtScore(merged.score);
    el.querySelector('.pillar-name small').textContent = pillarLine(merged);
  }

  function applyBoard(goals, pillars, flash) {
    const fresh = !state.boardBuilt || pillars.some((p) => !state.pillars.has(p.id));
    for (const p of pillars) state.pillars.set(p.id, p);
    for (const g of goals) {
      if (fresh) state.goals.set(g.id, g);
      else setGoal(g, flash);
    }
    if (fresh) buildBoard();
    else for (const p of pillars) setPillar(p);
    touched();
  }

  // ---------------------------------------------------------------- side panels

  function renderSummary() {
    const n = { red: 0, amber: 0, green: 0, unknown: 0 };
    for (const g of state.goals.values()) n[g.status] = (n[g.status] || 0) + 1;
    for (const k of Object.keys(n)) $(`n-${k}`).textContent = String(n[k]);
    const open = [...state.alarms.values()].filter((a) => a.state === 'open');
    $('n-alarms').textContent = String(open.length);
    $('n-agents').textContent = state.agentsOnline === null ? '–' : String(state.agentsOnline);
    $('n-silent').textContent = String(state.posts.filter((p) => p.silent).length);
    // Events a post's agents dropped (a full spool) or a broker lost: shown, never silent.
    const losing = state.posts.filter((p) => p.events_lost > 0);
    const lost = losing.reduce((sum, p) => sum + p.events_lost, 0);
    $('n-lost').textContent = String(lost);
    $('t-lost').hidden = lost === 0;
    $('t-lost').title = losing.map((p) => `${p.city}: ${p.events_lost}`).join(', ');
    // Alarm notifications that did not get through (docs/alerting.md): an alarm is never
    // silently not notified. Waiting for grouping is normal; a failed attempt or a long wait is not.
    const nf = state.notify;
    const stuck = nf && nf.pending > 0 && (nf.failed > 0 || nf.oldest_s > 60);
    $('t-notify').hidden = !stuck;
    if (stuck) {
      $('n-notify').textContent = String(nf.pending);
      $('t-notify').title = `oldest waiting ${Math.round(nf.oldest_s)} s, ${nf.failed} failed attempt(s) ` +
        'since start; retried until delivered (see the aggregator log and /metrics)';
    }
  }

  // Seconds as "+1 h 0 min", "-2 d 0 h", "95 s".
  function fmtOffset(s) {
    const a = Math.abs(s);
    const sign = s < 0 ? '-' : '';
    if (a >= 86400) return `${sign}${Math.floor(a / 86400)} d ${Math.floor((a % 86400) / 3600)} h`;
    if (a >= 3600) return `${sign}${Math.floor(a / 3600)} h ${Math.floor((a % 3600) / 60)} min`;
    return `${sign}${Math.round(a)} s`;
  }

  function clockText(c) {
    if (!c) return '–';
    const parts = [];
    parts.push(c.offset_ms === null ? 'offset not measured' : `offset ${fmtOffset(c.offset_ms / 1000)}`);
    if (c.time_corrected) parts.push('times corrected');
    if (c.sync === 'unsynchronised') parts.push('not synchronised (NTP)');
    if (c.jumps > 0) parts.push(`${c.jumps} jump(s)`);
    return parts.join(' · ');
  }

  function alarmTitle(a) {
    if (a.kind === 'goal') {
      const g = state.goals.get(a.goal);
      return `Goal ${a.goal}${g ? ` · ${g.name}` : ''}`;
    }
    if (a.kind === 'store_failing') {
      return 'Aggregator store failing (disk full?): events wait in memory and at the posts; see the aggregator log';
    }
    const p = state.postsById.get(a.post);
    const where = p ? `${p.city} (${a.post})` : a.post;
    if (a.kind === 'topic_mismatch') return `Post ${where}: events claiming another post's identity`;
    if (a.kind === 'clock_offset') {
      const agents = (a.causes || []).map((c) => `${c.indicator} ${c.value > 0 ? '+' : ''}${fmtOffset(c.value)}`);
      return `Post ${where}: agent clock off (${agents.join(', ')}); times corrected, fix its NTP`;
    }
    return `Post ${where} is silent`;
  }

  function renderAlarms() {
    const list = $('alarms');
    const open = [...state.alarms.values()].filter((a) => a.state === 'open')
      .sort((x, y) => (RANK[y.level] - RANK[x.level]) || (Number(x.acknowledged) - Number(y.acknowledged)) ||
                      (y.raised_at_ms - x.raised_at_ms));
    // Many open alarms (a bad day on a wall screen): one line each, causes in the tooltip and
    // the drill-down, so every alarm stays on screen.
    const dense = open.length > DENSE_ALARMS;
    list.classList.toggle('dense', dense);
    list.replaceChildren(...open.map((a) => {
      const all = (a.causes || []).map((c) => `${c.post}: ${c.indicator} ${fmtValue(c.value)}`);
      return h('li', { class: `alarm status-${a.level}${a.acknowledged ? ' acked' : ''}`, id: `alarm-${a.id}` },
        h('div', { class: 'alarm-head' }, pill(a.level),
          h('span', { class: 'alarm-title', title: [alarmTitle(a), ...all].join('\n') }, alarmTitle(a)),
          a.flapping ? h('span', { class: 'alarm-flapping', title: 'Opens and clears again and again: notified once, not each time' },
                         'flapping') : null,
          h('span', { class: 'alarm-age', title: `raised ${fmtAgo(a.raised_at_ms)}, ${fmtTime(a.raised_at_ms)}` },
            fmtAgeShort(a.raised_at_ms))),
        all.length ? h('div', { class: 'alarm-causes', title: all.join('\n') },
                       all.length > 2 ? `${all.slice(0, 2).join(' · ')} · +${all.length - 2} more` : all.join(' · '))
                   : null,
        h('div', { class: 'alarm-foot' },
          h('span', { class: 'alarm-meta' }, `#${a.id} · raised ${fmtAgo(a.raised_at_ms)} (${fmtTime(a.raised_at_ms)})` +
            (a.worst_level && a.worst_level !== a.level ? ` · was ${a.worst_level}` : '')),
          a.silenced_by ? h('span', { class: 'alarm-silenced', title: 'notifications held by this silence' },
                              `silenced #${a.silenced_by}`)
                        : h('button', { type: 'button', class: 'mute', title: 'Hold its notifications for a while',
                                        onclick: () => operator.openSilence(a), 'aria-label': 'Silence' }, dense ? '⊘' : 'Silence'),
          a.acknowledged ? null
                         : h('button', { type: 'button', class: 'ack', title: 'Acknowledge', 'aria-label': 'Acknowledge',
                                         onclick: () => operator.openAck(a) }, dense ? 'Ack' : 'Acknowledge')),
        a.acknowledged
          ? h('div', { class: 'alarm-acked' },
              `✓ acknowledged by ${a.ack.by} ${fmtAgo(a.ack.at_ms)}${a.ack.comment ? ` — “${a.ack.comment}”` : ''}`)
          : null);
    }));
    $('alarm-count').textContent = String(open.length);
    $('alarms-empty').hidden = open.length > 0;
    renderSummary();
  }

  function setAlarm(a) {
    state.alarms.set(a.id, a);
    if (a.kind === 'post_silent') refreshSide().catch(() => {});
    renderAlarms();
  }

  function renderSilent() {
    const silent = state.posts.filter((p) => p.silent).sort((a, b) => a.last_seen_ms - b.last_seen_ms);
    $('silent').replaceChildren(...silent.map((p) =>
      h('li', { class: 'status-unknown', id: `silent-${p.id}` },
        h('a', { href: `#/post/${encodeURIComponent(p.id)}`, class: 'silent-name' }, `${p.city} (${p.country})`),
        h('span', { class: 'when' }, `last heard ${fmtAgo(p.last_seen_ms)}`))));
    $('silent-count').textContent = String(silent.length);
    $('silent-empty').hidden = silent.length > 0;
  }

  function renderThreats() {
    $('threats').replaceChildren(...state.threats.map((t) => {
      let worst = 'unknown';
      for (const tg of t.goals) {
        const g = state.goals.get(tg.id);
        const st = g ? g.status : tg.status;
        if (RANK[st] > RANK[worst]) worst = st;
      }
      return h('li', { class: `status-${worst}`, id: `threat-${t.id}` },
        pill(worst), h('span', { class: 'threat-name' }, t.name),
        h('span', { class: 'threat-goals' }, `goals ${t.goals.map((g) => g.id).join(', ')}`));
    }));
  }

  function touched() {
    state.lastUpdate = Date.now();
    renderSummary();
    renderThreats();
  }

  // ---------------------------------------------------------------- loading

  async function loadBoard() {
    const [board, alarms] = await Promise.all([api('/api/v1/goals'), api('/api/v1/alarms?state=open')]);
    applyBoard(board.goals, board.pillars, true);
    state.alarms = new Map(alarms.alarms.map((a) => [a.id, a]));
    renderAlarms();
  }

  async function loadAlarms() {
    const alarms = await api('/api/v1/alarms?state=open');
    state.alarms = new Map(alarms.alarms.map((a) => [a.id, a]));
    renderAlarms();
  }

  async function refreshSide() {
    const [posts, stats, threats] = await Promise.all([
      api('/api/v1/posts'), api('/api/v1/stats').catch(() => null), api('/api/v1/threats')]);
    state.posts = posts.posts;
    state.postsById = new Map(state.posts.map((p) => [p.id, p]));
    if (stats) state.agentsOnline = stats.agents_online;
    if (stats && 'notifications_pending' in stats) {
      state.notify = { pending: stats.notifications_pending, failed: stats.notifications_failed_attempts,
                       oldest_s: stats.notifications_oldest_pending_age_s };
    }
    state.threats = threats.threats;
    renderSilent();
    renderThreats();
    renderSummary();
  }

  async function loadHistories() {
    const from = Date.now() - HISTORY_WINDOW_MS;
    await Promise.all([...state.goals.keys()].map(async (id) => {
      const r = await api(`/api/v1/history?scope=goal&id=${id}&from=${from}`);
      state.history.set(id, r.points.map((p) => ({ t: p.at_ms, score: p.score, status: p.status })));
      const el = $(`goal-${id}`);
      if (el) drawSpark(el.querySelector('.spark'), state.history.get(id), state.goals.get(id).status);
    }));
  }

  // ---------------------------------------------------------------- live stream

  function setConn(mode, text) {
    const el = $('conn');
    el.setAttribute('data-state', mode);
    el.textContent = text;
  }

  function connectStream() {
    clearTimeout(state.wsTimer);
    if (!('WebSocket' in window)) return setConn('polling', 'polling');
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const q = state.token ? `?token=${encodeURIComponent(state.token)}` : '';
    let ws;
    try {
      ws = new WebSocket(`${proto}://${location.host}/api/v1/stream${q}`);
    } catch (e) {
      return scheduleReconnect();
    }
    state.ws = ws;
    ws.onopen = () => {
      state.wsAttempt = 0;
      state.wsLive = true;
      setConn('live', 'live');
      notice('');
    };
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      onStreamMessage(m);
    };
    ws.onclose = () => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.wsLive = false;
      scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  // 1, 2, 4 … 30 s with jitter; the page polls meanwhile.
  function scheduleReconnect() {
    setConn('polling', 'polling');
    const delay = Math.min(30000, 1000 * 2 ** Math.min(state.wsAttempt, 5)) * (0.75 + Math.random() * 0.5);
    state.wsAttempt += 1;
    state.wsTimer = setTimeout(connectStream, delay);
  }

  function onStreamMessage(m) {
    switch (m.type) {
      case 'snapshot':
        applyBoard(m.goals, m.pillars, true);
        state.alarms = new Map(m.alarms.map((a) => [a.id, a]));
        renderAlarms();
        break;
      case 'goal':
        setGoal(m, true);
        touched();
        if (state.drill && state.drill.goal === m.id && m.change === 'status') refreshDrill();
        break;
      case 'pillar':
        setPillar(m);
        touched();
        break;
      case 'alarm':
        setAlarm(m);
        break;
      case 'silence':
        operator.refresh().catch(() => {});
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------- drill-down

  function parseRoute() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
    const r = {};
    for (let i = 0; i + 1 < parts.length; i += 2) r[parts[i]] = parts[i + 1];
    if (r.goal) r.goal = Number(r.goal);
    return (r.goal || r.post) ? r : null;
  }

  function crumbs(r, names) {
    const items = [];
    if (r.goal) items.push([`#/goal/${r.goal}`, `Goal ${r.goal}`]);
    if (r.region) items.push([`#/goal/${r.goal}/region/${encodeURIComponent(r.region)}`, names.region || r.region]);
    if (r.post) items.push([null, names.post || r.post]);
    const nav = $('crumbs');
    nav.replaceChildren();
    items.forEach(([href, text], i) => {
      if (i) nav.append(h('span', { class: 'sep' }, '›'));
      nav.append(href && i < items.length - 1 ? h('a', { href }, text) : h('span', null, text));
    });
  }

  function facts(pairs) {
    return h('dl', { class: 'facts' }, pairs.map(([k, v]) => h('div', null, h('dt', null, k), h('dd', null, v))));
  }

  async function showGoal(r) {
    const [g, regions] = await Promise.all([api(`/api/v1/goals/${r.goal}`), api(`/api/v1/regions?goal=${r.goal}`)]);
    for (const rg of regions.regions) state.regionNames.set(rg.id, rg.name);
    crumbs(r, {});
    $('drill-title').replaceChildren(pill(g.status), `Goal ${g.id} · ${g.name}`);
    const inds = [...g.indicators].sort((a, b) => (RANK[b.status] - RANK[a.status]) || (b.severity - a.severity));
    $('drill-body').replaceChildren(
      h('p', null, g.aims || ''),
      facts([['score', fmtScore(g.score)], ['pillar', g.pillar], ['coverage', `${Math.round((g.coverage || 0) * 100)}%`],
             ['posts reporting', `${g.posts_reporting} / ${g.posts_expected}`],
             ['indicators reporting', `${g.indicators_reporting} / ${g.indicators_total}`],
             ['since', fmtTime(g.since_ms)]]),
      h('h3', null, 'Regions'),
      h('div', { class: 'tiles', id: 'drill-regions' }, regions.regions.map((rg) =>
        h('button', { type: 'button', class: `tile status-${rg.status}`, id: `region-${rg.id}`,
                      onclick: () => { location.hash = `#/goal/${r.goal}/region/${encodeURIComponent(rg.id)}`; } },
          h('span', { class: 'tile-name' }, rg.name), pill(rg.status),
          h('span', { class: 'tile-meta' },
            `${rg.posts_reporting} of ${rg.posts} posts reporting · ${rg.posts_red} red · ${rg.posts_amber} amber` +
            (rg.posts_silent ? ` · ${rg.posts_silent} silent` : ''))))),
      h('h3', null, 'Indicators'),
      h('table', { class: 'grid' },
        h('thead', null, h('tr', null, h('th', null, 'status'), h('th', null, 'indicator'), h('th', null, 'value'),
          h('th', null, 'posts red / amber / reporting'), h('th', null, 'amber / red at'))),
        h('tbody', null, inds.map((i) => h('tr', { class: i.posts_reporting ? '' : 'dim' },
          h('td', null, pill(i.status)), h('td', null, i.name),
          h('td', { class: 'num' }, fmtValue(i.value, i.unit)),
          h('td', { class: 'num' }, `${i.posts_red} / ${i.posts_amber} / ${i.posts_reporting}`),
          h('td', { class: 'num' }, i.kind === 'text' ? '–' : `${i.amber} / ${i.red}`))))));
  }

  async function showRegion(r) {
    const [posts, g, regions] = await Promise.all([
      api(`/api/v1/posts?region=${encodeURIComponent(r.region)}&goal=${r.goal}`), api(`/api/v1/goals/${r.goal}`),
      api(`/api/v1/regions?goal=${r.goal}`)]);
    for (const rg of regions.regions) state.regionNames.set(rg.id, rg.name);
    const region = regions.regions.find((x) => x.id === r.region) || { name: r.region, status: 'unknown' };
    crumbs(r, { region: region.name });
    $('drill-title').replaceChildren(pill(region.status), `${region.name} · goal ${g.id}`);
    const list = [...posts.posts].sort((a, b) => (RANK[b.status] - RANK[a.status]) || a.city.localeCompare(b.city));
    $('drill-body').replaceChildren(
      h('p', null, `Post statuses from the indicators that feed goal ${g.id} (${g.name}).`),
      h('div', { class: 'tiles', id: 'drill-posts' }, list.map((p) =>
        h('button', { type: 'button', class: `tile status-${p.status}`, id: `post-${p.id}`,
                      onclick: () => { location.hash = `#/goal/${r.goal}/region/${encodeURIComponent(r.region)}/post/${encodeURIComponent(p.id)}`; } },
          h('span', { class: 'tile-name' }, `${p.city}`), pill(p.silent ? 'unknown' : p.status),
          h('span', { class: 'tile-meta' }, `${p.country} · ${p.silent ? 'SILENT · ' : ''}${p.events_lost ? `${p.events_lost} event(s) lost · ` : ''}${p.indicators_reporting} indicator(s) · last heard ${fmtAgo(p.last_seen_ms)}`)))));
  }

  async function showPost(r) {
    const p = await api(`/api/v1/posts/${encodeURIComponent(r.post)}`);
    if (r.region && !state.regionNames.has(r.region)) {
      const regions = await api('/api/v1/regions');
      for (const rg of regions.regions) state.regionNames.set(rg.id, rg.name);
    }
    crumbs(r, { post: p.city, region: state.regionNames.get(r.region) || r.region });
    $('drill-title').replaceChildren(pill(p.status), `${p.city} · ${p.country}`);
    const inds = [...p.indicators].sort((a, b) => {
      const ag = r.goal && a.goals.includes(r.goal) ? 1 : 0;
      const bg = r.goal && b.goals.includes(r.goal) ? 1 : 0;
      return (bg - ag) || (RANK[b.status] - RANK[a.status]) || a.name.localeCompare(b.name);
    });
    $('drill-body').replaceChildren(
      facts([['post', p.id], ['region', p.region], ['silent', p.silent ? 'yes' : 'no'], ['last heard', fmtAgo(p.last_seen_ms)],
        ['events lost', p.events_lost ? `${p.events_lost} (dropped by a full spool at the post, or lost by a broker)` : 'none'],
        ...(p.agents || []).map((a) => [`agent ${a.agent} clock`, clockText(a.clock)])]),
      h('h3', null, r.goal ? `Indicators (goal ${r.goal} first)` : 'Indicators'),
      inds.length === 0 ? h('p', null, 'This post has not reported anything yet.') :
      h('table', { class: 'grid', id: 'drill-indicators' },
        h('thead', null, h('tr', null, h('th', null, 'status'), h('th', null, 'indicator'), h('th', null, 'value'),
          h('th', null, 'amber / red at'), h('th', null, 'goals'), h('th', null, 'observed'))),
        h('tbody', null, inds.map((i) => h('tr', { class: r.goal && !i.goals.includes(r.goal) ? 'dim' : '' },
          h('td', null, pill(i.status)), h('td', null, i.name),
          h('td', { class: 'num' }, i.kind === 'text' ? i.text : fmtValue(i.value, i.unit)),
          h('td', { class: 'num' }, i.kind === 'text' ? '–' : `${i.amber} / ${i.red}`),
          h('td', null, i.goals.join(', ')),
          h('td', { title: i.time_corrected ? `the agent said ${new Date(i.agent_observed_at_ms).toISOString()}` : '' },
            i.time_corrected ? `${fmtAgo(i.observed_at_ms)} (time corrected)` : fmtAgo(i.observed_at_ms)))))));
  }

  async function refreshDrill() {
    // The Strategy view (strategy.js): #/strategy, and #/target/<id> for one target's readings.
    const target = location.hash.match(/^#\/target\/(.+)$/);
    const view = target || location.hash === '#/strategy' ? '#/strategy' : location.hash === '#/fleet' ? '#/fleet' : '#/';
    strategy.show(view === '#/strategy');
    fleet.show(view === '#/fleet');  // the Fleet view (fleet.js)
    for (const a of document.querySelectorAll('.view-tabs a'))
      a.setAttribute('aria-current', a.getAttribute('href') === view ? 'page' : 'false');
    if (view === '#/fleet') {
      $('drill').hidden = true;
      return;
    }
    if (target) {
      state.drill = { target: decodeURIComponent(target[1]) };
      $('drill').hidden = false;
      try {
        await strategy.showTarget(state.drill.target);
      } catch (e) {
        $('drill-body').replaceChildren(h('p', { class: 'error' }, e.message));
      }
      return;
    }
    const r = parseRoute();
    state.drill = r;
    const drill = $('drill');
    if (!r) {
      drill.hidden = true;
      return;
    }
    drill.hidden = false;
    try {
      if (r.post) await showPost(r);
      else if (r.region) await showRegion(r);
      else await showGoal(r);
    } catch (e) {
      $('drill-body').replaceChildren(h('p', { class: 'error' }, e.message));
    }
  }

  function closeDrill() {
    if (state.drill && state.drill.target) {
      location.hash = '#/strategy';  // back to the view the target was opened from
      return;
    }
    history.pushState(null, '', location.pathname + location.search);
    refreshDrill();
  }

  // ---------------------------------------------------------------- main

  function tickClock() {
    const d = new Date();
    $('clock').textContent = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
    $('updated').textContent = state.lastUpdate ? `board updated ${fmtAgo(state.lastUpdate)}` : 'not updated yet';
  }

  async function pollBoard() {
    if (state.wsLive) return;
    try {
      await loadBoard();
      if (!state.wsLive) setConn('polling', 'polling');
    } catch (e) {
      setConn('offline', 'offline');
      notice(`Cannot reach the aggregator: ${e.message}. Retrying.`);
    }
  }

  async function start() {
    initToken();
    $('drill-close').addEventListener('click', closeDrill);
    $('drill').addEventListener('click', (ev) => { if (ev.target === $('drill')) closeDrill(); });
    document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape' && !$('drill').hidden) closeDrill(); });
    window.addEventListener('hashchange', refreshDrill);
    $('token-cancel').addEventListener('click', () => $('token-dialog').close());
    tickClock();
    setInterval(tickClock, 1000);

    try {
      state.whoami = await api('/api/v1/whoami');
      $('who').textContent = state.whoami.auth === 'token' ? `· signed in as ${state.whoami.name} (${state.whoami.role})` : '';
      await loadBoard();
      operator.start();
      setConn('connecting', 'connecting');
    } catch (e) {
      setConn('offline', 'offline');
      notice(`Cannot load the board: ${e.message}. Retrying.`);
    }
    connectStream();
    refreshSide().catch(() => {});
    loadHistories().catch(() => {});
    refreshDrill();
    setInterval(pollBoard, POLL_BOARD_MS);
    setInterval(() => refreshSide().catch(() => {}), POLL_SIDE_MS);
    setInterval(() => loadHistories().catch(() => {}), POLL_HISTORY_MS);
    setInterval(renderAlarms, 30000);  // "raised 5 min ago"
  }

  // The Strategy view (strategy.js) and the Fleet view (fleet.js).
  const strategy = window.PostwatchStrategy({ $, h, svg, api, state });
  const fleet = window.PostwatchFleet({ $, h, api, fmtAgo });

  // Acknowledging and silences (operator.js).
  const operator = window.PostwatchOperator({ $, h, api, state, alarmTitle, setAlarm, fmtAgo, fmtTime, notice,
                                              reloadAlarms: loadAlarms });

  document.addEventListener('DOMContentLoaded', start);
})();
